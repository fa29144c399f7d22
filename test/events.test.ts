/**
 * The event bus on three real mesh nodes: per-publisher order with
 * wildcards and own events, a lost gossip message repaired from the
 * publisher's buffer, the gap event when the buffer no longer has it,
 * catching up after a partition, a slow subscriber's overflow, forged and
 * unknown publishers dropped and counted, and the ordered path.
 */
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PrivateKey } from '@libp2p/interface'
import { join } from 'node:path'
import t from 'tap'
import { decodeChannelBatch, encodeChannelBatch } from '../gossip/channel-codec.js'
import { silentLogger } from '../gossip/logger.js'
import { loadOrCreatePeerKey } from '../gossip/peer-key.js'
import { InvalidArgumentError } from '../lib/errors.js'
import { encodeBody, encodeSignedEvent, signedBytes } from '../lib/events/event-codec.js'
import { EventTooLargeError } from '../lib/events/errors.js'
import { EventBus, type ClusterEvent, type EventGap, type EventsOptions } from '../lib/events/events.js'
import { compilePattern } from '../lib/events/topic-pattern.js'
import { startServiceCluster, until, type ServiceNode } from './helpers/service-nodes.js'

t.test('topic patterns: * is one word, # is any number', async t => {
  const cases: Array<[string, string, boolean]> = [
    ['encounter.*', 'encounter.saved', true], ['encounter.*', 'encounter', false], ['encounter.*', 'encounter.a.b', false],
    ['encounter.#', 'encounter', true], ['encounter.#', 'encounter.a.b', true], ['#', 'a.b', true], ['#.saved', 'saved', true],
    ['#.saved', 'encounter.saved', true], ['#.saved', 'x.saved.y', false], ['a.#.z', 'a.z', true], ['a.#.z', 'a.b.c.z', true],
    ['a.*.z', 'a.z', false], ['a.b', 'aXb', false], ['hl7-in', 'hl7-in', true]
  ]
  for (const [pattern, topic, expected] of cases) t.equal(compilePattern(pattern)(topic), expected, `${pattern} ${expected ? 'matches' : 'does not match'} ${topic}`)
  t.throws(() => compilePattern('a.b*'), InvalidArgumentError)
})

t.test('event bus', async t => {
  const cluster = await startServiceCluster('events', ['n1', 'n2', 'n3'])
  const buses: EventBus[] = []
  t.teardown(async () => {
    for (const b of buses) await b.close()
    await cluster.stop()
  })
  const [n1, , n3] = cluster.nodes
  const keys = new Map<ServiceNode, PrivateKey>()
  for (const n of cluster.nodes) keys.set(n, await loadOrCreatePeerKey(join(cluster.root, n.mesh.nodeId), silentLogger))
  let opened = 0
  /** A bus per node on a fresh topic, once every node sees the others subscribed. */
  async function open (opts: Partial<EventsOptions> = {}): Promise<{ topic: string, bus: EventBus[] }> {
    const topic = `test/events-${++opened}`
    const bus = cluster.nodes.map(n => new EventBus(n.host, { privateKey: keys.get(n) as PrivateKey, topic, ...opts }))
    buses.push(...bus)
    await until('subscribed everywhere, and every bus following the two others', () => cluster.nodes.every(n => n.mesh.libp2p.services.pubsub.getSubscribers(topic).length === 2) && bus.every(b => b.stats().publishers === 2))
    return { topic, bus }
  }
  function collect (bus: EventBus, pattern: string): ClusterEvent[] {
    const got: ClusterEvent[] = []
    bus.subscribe(pattern, e => { got.push(e) })
    return got
  }
  const seqsOf = (got: ClusterEvent[], publisher: string): number[] => got.filter(e => e.publisher === publisher).map(e => e.seq)
  const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
  /**
   * Makes `node` ignore every copy of the gossip messages on `topic` that
   * carry one of `seqs` from `publisher` (the bus's and its channel's
   * numbers agree on a fresh topic): those messages are lost for it.
   */
  function lose (node: ServiceNode, topic: string, publisher: string, seqs: number[]): void {
    const pubsub = node.mesh.libp2p.services.pubsub
    const validate = pubsub.topicValidators.get(topic)
    if (validate === undefined) throw new Error('no validator')
    pubsub.topicValidators.set(topic, async (peer, msg) => {
      const b = decodeChannelBatch(msg.data)
      const lost = b.publisher === publisher && seqs.some(s => s >= b.firstSeq && s < b.firstSeq + b.items.length)
      return lost ? TopicValidatorResult.Ignore : await validate(peer, msg)
    })
  }

  t.test('every node gets every publisher\'s events in order, own events included, by pattern', async t => {
    const { bus: [b1, b2, b3] } = await open()
    const on3 = collect(b3, 'encounter.*')
    const own = collect(b1, 'encounter.#')
    const N = 300
    const sends: Array<Promise<unknown>> = []
    for (let i = 1; i <= N; i++) {
      sends.push(b1.publish(i % 2 === 0 ? 'encounter.saved' : 'encounter.voided', { i }))
      sends.push(b2.publish('encounter.saved', { i }))
      sends.push(b2.publish('patient.merged', { i }))
    }
    const published = await Promise.all(sends)
    t.same(published.slice(0, 3), [{ seq: 1 }, { seq: 1 }, { seq: 2 }], 'publish resolves with the sequence number')
    await until('n3 got both streams', () => on3.length === 2 * N)
    t.same(seqsOf(on3, 'n1'), range(1, N), 'n1\'s events in order')
    t.same(seqsOf(on3, 'n2'), range(1, N).map(i => 2 * i - 1), 'n2\'s encounter events in order, patient.merged not matched')
    t.same(on3.filter(e => e.publisher === 'n1').map(e => (e.payload as { i: number }).i), range(1, N), 'payloads as published')
    await until('n1 got its own', () => seqsOf(own, 'n1').length === N)
    t.same(seqsOf(own, 'n1'), range(1, N))
    t.equal(b3.stats().repaired, 0)
  })

  t.test('a lost gossip message is fetched from the publisher, and order holds', async t => {
    const { topic, bus: [b1, , b3] } = await open()
    const got = collect(b3, '#')
    const gaps: EventGap[] = []
    b3.on('gap', g => gaps.push(g))
    await b1.publish('a', 1)
    await until('first', () => got.length === 1)
    lose(n3, topic, 'n1', [2])
    await Promise.all([2, 3, 4].map(async i => await b1.publish('a', i)))
    await b1.publish('a', 5)
    await until('all five', () => got.length === 5)
    t.same(got.map(e => e.payload), [1, 2, 3, 4, 5], 'in order')
    t.ok(b3.stats().repaired >= 3, `${b3.stats().repaired} repaired`)
    t.same(gaps, [])
  })

  t.test('a lost last event, which no later one reveals, is found by the periodic head check and fetched', async t => {
    const { topic, bus: [b1, , b3] } = await open({ headCheckMs: 200 })
    const got = collect(b3, '#')
    await b1.publish('a', 1)
    await until('first', () => got.length === 1)
    lose(n3, topic, 'n1', [2])
    await b1.publish('a', 2)
    await until('the last event, fetched', () => got.length === 2)
    t.same(got.map(e => e.payload), [1, 2])
    t.equal(b3.stats().repaired, 1, 'it came by fetch, not gossip')
  })

  t.test('members are asked for their last event only while this node has a subscriber', async t => {
    const asked: string[] = []
    const calls = n3.host.calls
    const call = calls.call.bind(calls)
    calls.call = async (node, method, body, opts) => {
      asked.push(method)
      return await call(node, method, body, opts)
    }
    t.teardown(() => { calls.call = call })
    const { topic, bus: [, , b3] } = await open({ headCheckMs: 50 })
    const heads = (): number => asked.filter(m => m === `${topic}/head`).length
    const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
    await sleep(200)
    const opened = heads()
    await sleep(500)
    t.equal(heads(), opened, 'no subscriber: ten check periods pass without a call')
    const unsubscribe = b3.subscribe('#', () => {})
    await sleep(500)
    const subscribed = heads()
    t.ok(subscribed - opened >= 6, `a subscriber: ${subscribed - opened} calls in ten periods to two members`)
    unsubscribe()
    await sleep(500)
    t.equal(heads(), subscribed, 'the last subscriber gone: no more calls')
  })

  t.test('a head call that fails while a member connects is tried again, so its first events lost on the way are fetched', async t => {
    const topic = `test/events-${++opened}`
    const b1 = new EventBus(n1.host, { privateKey: keys.get(n1) as PrivateKey, topic })
    buses.push(b1)
    // n3's first two asks of n1 fail, as when n1 has not admitted it yet.
    const calls = n3.host.calls
    const call = calls.call.bind(calls)
    let refused = 0
    calls.call = async (node, method, body, opts) => {
      if (node === 'n1' && method === `${topic}/head` && refused < 2) {
        refused++
        throw new Error('not admitted yet')
      }
      return await call(node, method, body, opts)
    }
    t.teardown(() => { calls.call = call })
    const b3 = new EventBus(n3.host, { privateKey: keys.get(n3) as PrivateKey, topic })
    buses.push(b3)
    lose(n3, topic, 'n1', [1])
    const got = collect(b3, '#')
    await until('n1 and n3 see each other subscribed', () => [n1, n3].every(n => n.mesh.libp2p.services.pubsub.getSubscribers(topic).length >= 1))
    await b1.publish('a', 1)
    await b1.publish('a', 2)
    await until('both events on n3', () => got.length === 2)
    t.same(got.map(e => e.payload), [1, 2], 'the first, lost on the way, was fetched: the stream started at n1\'s head, not at event 2')
    t.equal(refused, 2)
  })

  t.test('what the publisher\'s buffer no longer holds is reported as a gap', async t => {
    const { topic, bus: [b1, , b3] } = await open({ bufferEvents: 5 })
    const got = collect(b3, '#')
    const gaps: EventGap[] = []
    b3.on('gap', g => gaps.push(g))
    await b1.publish('a', 1)
    await until('first', () => got.length === 1)
    lose(n3, topic, 'n1', range(2, 20))
    await Promise.all(range(2, 20).map(async i => await b1.publish('a', i)))
    await b1.publish('a', 21)
    await until('the rest', () => got.at(-1)?.payload === 21)
    t.same(gaps, [{ publisher: 'n1', from: 2, to: 16 }], 'the gap names what is gone')
    t.same(got.map(e => e.seq), [1, 17, 18, 19, 20, 21], 'the buffer\'s five, then on')
    t.equal(b3.stats().lost, 15)
  })

  t.test('a slow subscriber\'s queue is bounded and its overflow reported', async t => {
    const { bus: [b1, b2] } = await open({ maxQueue: 5 })
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    const slow: number[] = []
    const fast: number[] = []
    b2.subscribe('a', async e => { await gate; slow.push(e.seq) })
    b2.subscribe('a', e => { fast.push(e.seq) })
    const overflows: number[] = []
    b2.on('overflow', o => overflows.push(o.seq))
    for (let i = 1; i <= 20; i++) await b1.publish('a', i)
    await until('the fast subscriber has all', () => fast.length === 20)
    release()
    await until('the slow one drained', () => slow.length + overflows.length === 20)
    t.same(fast, range(1, 20), 'a slow subscriber does not hold the others back')
    t.same(slow, range(1, 6), 'it gets the one its handler held and the five queued, in order')
    t.same(overflows, range(7, 20), 'the rest are reported')
    t.equal(b2.stats().overflowed, overflows.length)
  })

  t.test('an event claiming another publisher is dropped and counted', async t => {
    const { topic, bus: [, b2] } = await open()
    const got = collect(b2, '#')
    const n3key = keys.get(n3) as PrivateKey
    // n3 writes events as n1 (signed with its own key) and as a stranger, and relays them raw.
    const forge = async (publisher: string): Promise<Uint8Array> => {
      const body = encodeBody({ incarnation: 'forged', seq: 1, topic: 'a', payload: `as ${publisher}` })
      return encodeChannelBatch({ publisher, incarnation: 'forged', firstSeq: 1, items: [encodeSignedEvent({ body, signature: await n3key.sign(signedBytes(publisher, body)) })] })
    }
    const pubsub = n3.mesh.libp2p.services.pubsub
    await pubsub.publish(topic, await forge('n1'))
    await pubsub.publish(topic, await forge('stranger'))
    await pubsub.publish(topic, encodeChannelBatch({ publisher: 'n3', incarnation: 'x', firstSeq: 1, items: [new Uint8Array([1, 2])] }))
    await until('all counted', () => b2.stats().forged === 1 && b2.stats().unknownPublisher === 1 && b2.stats().malformed === 1)
    t.same(got, [], 'none delivered')
  })

  t.test('an event over its publisher\'s own connection needs no signature check; passed on by another member, it does', async t => {
    const { topic, bus: [, b2] } = await open()
    const got = collect(b2, '#')
    const body = (publisher: string): Uint8Array => encodeBody({ incarnation: `unsigned-${publisher}`, seq: 1, topic: 'a', payload: `from ${publisher}` })
    // A signature nobody made: only the connection it came over can vouch for these.
    const batch = (publisher: string): Uint8Array => encodeChannelBatch({ publisher, incarnation: `unsigned-${publisher}`, firstSeq: 1, items: [encodeSignedEvent({ body: body(publisher), signature: new Uint8Array(64) })] })
    const pubsub = n3.mesh.libp2p.services.pubsub
    await pubsub.publish(topic, batch('n3'))
    await pubsub.publish(topic, batch('n1'))
    await until('n3\'s own event delivered and the one claiming n1 counted', () => got.length === 1 && b2.stats().forged === 1)
    t.same(got.map(e => [e.publisher, e.payload]), [['n3', 'from n3']])
  })

  t.test('ordered events go to the sink the Cluster gives, and come back in its order', async t => {
    // Stands in for the Raft log: one counter, each entry applied on every node.
    let index = 0
    const all: EventBus[] = []
    const orderedPublish = async (topic: string, payload: Uint8Array): Promise<number> => {
      const seq = ++index
      for (const b of all) b.deliverOrdered({ topic, payload, publisher: 'n1', seq })
      return seq
    }
    const { bus } = await open({ orderedPublish })
    all.push(...bus)
    const got = collect(bus[2], 'x.*')
    t.same(await bus[0].publish('x.y', { v: 1 }, { ordered: true }), { seq: 1 })
    t.same(got, [{ topic: 'x.y', payload: { v: 1 }, publisher: 'n1', seq: 1 }])
    const { bus: [plain] } = await open()
    await t.rejects(plain.publish('x.y', 1, { ordered: true }), InvalidArgumentError)
  })

  t.test('limits and arguments', async t => {
    const { bus: [b1] } = await open({ maxPayloadBytes: 100 })
    await t.rejects(b1.publish('a', 'x'.repeat(200)), EventTooLargeError)
    await t.rejects(b1.publish('a b', 1), InvalidArgumentError)
    await t.rejects(b1.publish('a.*', 1), InvalidArgumentError)
    t.throws(() => b1.subscribe('a', 'not a function' as unknown as () => void), InvalidArgumentError)
    t.same(await b1.publish('a', 1), { seq: 1 }, 'a refused publish takes no sequence number')
  })

  t.test('a node cut off gets what it missed when it reconnects', async t => {
    const { bus: [b1, b2, b3] } = await open()
    const got = collect(b3, '#')
    await b1.publish('a', 0)
    await until('first', () => got.length === 1)
    await cluster.faults.isolate(n3.mesh)
    await until('n3 is cut off', () => n3.mesh.members().length === 0 && n1.mesh.members().length === 1)
    for (let i = 1; i <= 10; i++) await b1.publish('a', i)
    await b2.publish('b', 'from n2')
    await new Promise(resolve => setTimeout(resolve, 200))
    t.equal(got.length, 1, 'nothing while cut off')
    cluster.faults.heal()
    await until('caught up', () => got.length === 12)
    t.same(seqsOf(got, 'n1'), range(1, 11))
    t.same(seqsOf(got, 'n2'), [1])
  })
})
