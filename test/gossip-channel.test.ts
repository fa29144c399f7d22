/**
 * Gossip channels on three real nodes: delivery to every other node,
 * per-publisher order under concurrent publishers and batching, gap
 * detection when a sequence number is skipped, reordering within the
 * window, duplicates and malformed messages.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { ChannelGap, ChannelMessage, GossipChannel } from '../gossip/channel.js'
import { decodeChannelBatch, encodeChannelBatch, type ChannelBatch } from '../gossip/channel-codec.js'
import { InvalidArgumentError } from '../gossip/errors.js'
import { createMeshNode, type MeshNode } from '../gossip/node.js'

const SECRET = 'a cluster secret of some length'
const TOPIC = 'test/events'

async function until (what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

const enc = new TextEncoder()
const dec = new TextDecoder()

interface Node { mesh: MeshNode, channel: GossipChannel, got: ChannelMessage[], gaps: ChannelGap[] }

t.test('gossip channel', async t => {
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-channel-'))
  const nodes: Node[] = []
  t.teardown(async () => {
    for (const n of nodes) await n.channel.close()
    for (const n of nodes) await n.mesh.stop()
    await rm(root, { recursive: true, force: true })
  })
  for (const id of ['n1', 'n2', 'n3']) {
    const mesh = await createMeshNode({ nodeId: id, clusterName: 'chan', appVersion: '1', secret: SECRET, dataDir: join(root, id), bootstrap: nodes.slice(0, 1).map(n => n.mesh.multiaddrs[0]) })
    const channel = mesh.channel(TOPIC, { reorderWindowMs: 200 })
    const node: Node = { mesh, channel, got: [], gaps: [] }
    channel.on('message', m => node.got.push(m))
    channel.on('gap', g => node.gaps.push(g))
    nodes.push(node)
  }
  const [n1, n2, n3] = nodes
  await until('every channel sees the two others subscribed', () => nodes.every(n => n.channel.peers().length === 2))
  const reset = (): void => { for (const n of nodes) { n.got = []; n.gaps = [] } }
  const from = (n: Node, publisher: string): ChannelMessage[] => n.got.filter(m => m.publisher === publisher)

  t.test('a publish reaches every other node, with sequence numbers from 1', async t => {
    reset()
    const seqs = [1, 2, 3].map(i => n1.channel.publish(enc.encode(`hello ${i}`)))
    t.same(seqs, [1, 2, 3], 'publish returns the sequence number')
    await until('n2 and n3 received all three', () => n2.got.length === 3 && n3.got.length === 3)
    for (const n of [n2, n3]) {
      t.same(n.got.map(m => [m.publisher, m.seq, dec.decode(m.payload)]), [['n1', 1, 'hello 1'], ['n1', 2, 'hello 2'], ['n1', 3, 'hello 3']])
    }
    t.equal(n1.got.length, 0, 'a publisher does not receive its own messages')
    t.ok(n1.channel.stats().batchesSent < 3, 'the three small payloads were batched')
  })

  t.test('a lone payload leaves at the end of its turn; later ones wait for the batch delay and go together', async t => {
    // A delay no test would wait out: the first payload must not wait for it, the next three must.
    const lone = [n1, n2].map(n => n.mesh.channel('test/lone', { batchDelayMs: 60_000 }))
    t.teardown(async () => { for (const c of lone) await c.close() })
    const got: string[] = []
    lone[1].on('message', m => got.push(dec.decode(m.payload)))
    await until('n1 sees n2 subscribed', () => lone[0].peers().includes('n2'))
    lone[0].publish(enc.encode('first'))
    await until('the lone payload arrives', () => got.length === 1)
    t.equal(lone[0].stats().batchesSent, 1)
    lone[0].publish(enc.encode('b'))
    await new Promise(resolve => setTimeout(resolve, 50))
    for (const x of ['c', 'd']) lone[0].publish(enc.encode(x))
    t.same(got, ['first'], 'payloads right after a batch wait for the delay')
    await lone[0].flush()
    await until('the held payloads arrive', () => got.length === 4)
    t.same(got, ['first', 'b', 'c', 'd'])
    t.equal(lone[0].stats().batchesSent, 2, 'the three held payloads, published in two turns, went as one batch')
  })

  t.test('per-publisher order holds with concurrent publishers and mixed sizes', async t => {
    reset()
    const N = 300
    const big = 'x'.repeat(20_000)
    for (let i = 1; i <= N; i++) {
      n1.channel.publish(enc.encode(`a${i}${i % 50 === 0 ? big : ''}`))
      n2.channel.publish(enc.encode(`b${i}`))
      if (i % 37 === 0) await new Promise(resolve => setTimeout(resolve, 1))
    }
    await until('n3 received both streams', () => n3.got.length === 2 * N)
    await until('n1 and n2 received each other\'s', () => from(n1, 'n2').length === N && from(n2, 'n1').length === N)
    for (const [receiver, publisher, prefix] of [[n3, 'n1', 'a'], [n3, 'n2', 'b'], [n2, 'n1', 'a'], [n1, 'n2', 'b']] as const) {
      const ms = from(receiver, publisher)
      const inOrder = ms.every((m, i) => m.seq === ms[0].seq + i && dec.decode(m.payload).startsWith(`${prefix}${i + 1}`))
      t.ok(inOrder, `${receiver.mesh.nodeId} got ${publisher}'s ${N} payloads in order`)
    }
    t.same(nodes.flatMap(n => n.gaps), [], 'no gaps')
  })

  // Batches crafted by hand and published raw, as a publisher would send them.
  async function raw (publisher: string, incarnation: string, firstSeq: number, items: string[], starts?: Array<[string, number]>): Promise<void> {
    await n1.mesh.libp2p.services.pubsub.publish(TOPIC, encodeChannelBatch({ publisher, incarnation, firstSeq, starts, items: items.map(s => enc.encode(s)) }))
  }

  t.test('a skipped sequence number is reported as a gap, then delivery goes on', async t => {
    reset()
    await raw('ghost', 'inc-1', 1, ['g1'])
    await until('g1 delivered', () => from(n2, 'ghost').length === 1 && from(n3, 'ghost').length === 1)
    await raw('ghost', 'inc-1', 3, ['g3', 'g4'])
    await until('the gap is reported and g3, g4 delivered', () => [n2, n3].every(n => n.gaps.length === 1 && from(n, 'ghost').length === 3))
    for (const n of [n2, n3]) {
      t.same(n.gaps, [{ publisher: 'ghost', from: 2, to: 2 }], `${n.mesh.nodeId} names the missing sequence number`)
      t.same(from(n, 'ghost').map(m => m.seq), [1, 3, 4])
    }
  })

  t.test('a batch that arrives early waits for the missing one within the window', async t => {
    reset()
    await raw('ghost', 'inc-1', 6, ['g6'])
    await raw('ghost', 'inc-1', 5, ['g5'])
    await until('both delivered', () => from(n2, 'ghost').length === 2 && from(n3, 'ghost').length === 2)
    t.same(from(n2, 'ghost').map(m => dec.decode(m.payload)), ['g5', 'g6'], 'delivered in sequence order')
    await new Promise(resolve => setTimeout(resolve, 300))
    t.same(n2.gaps, [], 'no gap reported')
  })

  t.test('duplicates, stale incarnations and malformed messages are dropped', async t => {
    reset()
    const dupBefore = n2.channel.stats().duplicates
    const badBefore = n2.channel.stats().badMessages
    // Same publisher, overlapping sequence numbers under a new header (a resend).
    await raw('ghost', 'inc-1', 4, ['g4 again', 'g5 again', 'g6 again', 'g7'])
    await raw('ghost', 'inc-0', 99, ['from an older start'])
    await n1.mesh.libp2p.services.pubsub.publish(TOPIC, enc.encode('not a channel frame'))
    await until('g7 delivered', () => from(n2, 'ghost').length === 1)
    t.same(from(n2, 'ghost').map(m => dec.decode(m.payload)), ['g7'], 'only the new payload is delivered')
    await until('the duplicates and the stale message are counted', () => n2.channel.stats().duplicates >= dupBefore + 3)
    await until('the malformed message is counted', () => n2.channel.stats().badMessages > badBefore)
    await raw('ghost', 'inc-2', 1, ['restart'])
    await until('a new incarnation starts a new sequence', () => from(n2, 'ghost').length === 2)
    t.same(n2.gaps, [], 'a restart is not a gap')
    await t.rejects(raw('ghost', 'inc-2', 1, ['same header']), /Duplicate/, 'gossipsub itself drops a second message with the same id')
  })

  t.test('a restarted publisher whose first batch was lost is reported from 1: a receiver that heard its previous start was listening', async t => {
    reset()
    await raw('ghost', 'inc-3', 3, ['r3'])
    await until('the gap is reported and r3 delivered', () => [n2, n3].every(n => n.gaps.length === 1 && from(n, 'ghost').length === 1))
    for (const n of [n2, n3]) t.same(n.gaps, [{ publisher: 'ghost', from: 1, to: 2 }], `${n.mesh.nodeId} names the lost first batch`)
    await raw('stranger', 'inc-1', 7, ['s7'])
    await until('a never-heard publisher\'s batch delivered', () => from(n2, 'stranger').length === 1)
    t.same(n2.gaps.filter(g => g.publisher === 'stranger'), [], 'a publisher never heard before sets the baseline')
  })

  t.test('a never-heard publisher that names a receiver\'s start: that receiver reports what it missed since then as a gap', async t => {
    reset()
    await raw('newcomer', 'inc-1', 5, ['c5'], [['n2', 3]])
    await until('c5 delivered to both', () => from(n2, 'newcomer').length === 1 && from(n3, 'newcomer').length === 1)
    t.same(n2.gaps, [{ publisher: 'newcomer', from: 3, to: 4 }], 'n2 was owed 3 and 4')
    t.same(n3.gaps, [], 'n3, not named, takes 5 as its baseline')
  })

  t.test('a publisher tells a receiver that subscribes while it publishes where its share starts', async t => {
    reset()
    const seen: ChannelBatch[] = []
    const pubsub = n3.mesh.libp2p.services.pubsub
    const onRaw = (evt: CustomEvent<{ topic: string, data: Uint8Array }>): void => { if (evt.detail.topic === TOPIC) seen.push(decodeChannelBatch(evt.detail.data)) }
    pubsub.addEventListener('message', onRaw)
    t.teardown(() => { pubsub.removeEventListener('message', onRaw) })
    const before = n1.channel.publish(enc.encode('before n4'))
    await n1.channel.flush()
    const mesh = await createMeshNode({ nodeId: 'n4', clusterName: 'chan', appVersion: '1', secret: SECRET, dataDir: join(root, 'n4'), bootstrap: [n1.mesh.multiaddrs[0]] })
    const n4: Node = { mesh, channel: mesh.channel(TOPIC, { reorderWindowMs: 200 }), got: [], gaps: [] }
    n4.channel.on('message', m => n4.got.push(m))
    n4.channel.on('gap', g => n4.gaps.push(g))
    nodes.push(n4)
    await until('n1 sees n4 subscribed', () => n1.channel.peers().includes('n4'))
    const after = n1.channel.publish(enc.encode('after n4'))
    await until('n4 received the publish made after it subscribed', () => from(n4, 'n1').some(m => m.seq === after))
    const told = seen.filter(b => b.publisher === 'n1' && b.firstSeq >= after).flatMap(b => b.starts ?? []).filter(([r]) => r === 'n4')
    t.ok(told.length > 0, 'n1\'s batches name n4')
    t.ok(told.every(([, start]) => start > before && start <= after), `n4's share starts after the earlier publish (${before}) and no later than ${after}: ${JSON.stringify(told)}`)
    t.same(n4.gaps, [], 'nothing owed to n4 was lost')
  })

  t.test('no gossipsub mesh: members do not forward, each gets every message from its publisher', async t => {
    // A heartbeat (every second) would have grafted mesh peers by now if the degree were not 0.
    await new Promise(resolve => setTimeout(resolve, 1200))
    // getMeshPeers is on the implementation, not on @libp2p/gossipsub's exported interface.
    const meshPeers = (n: Node): unknown => (n.mesh.libp2p.services.pubsub as unknown as { getMeshPeers: (topic: string) => string[] }).getMeshPeers(TOPIC)
    for (const n of nodes) t.same(meshPeers(n), [], `${n.mesh.nodeId} forwards to nobody`)
  })

  t.test('oversized payloads are refused at publish', async t => {
    t.throws(() => n1.channel.publish(new Uint8Array(256 * 1024 + 1)), InvalidArgumentError)
    t.throws(() => n1.mesh.channel('', {}), InvalidArgumentError)
  })
})
