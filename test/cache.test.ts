/**
 * Caches on three real mesh nodes: replication and its batching, anti-
 * entropy after a partition heals and for a node that opens late,
 * invalidations and the cut-off node that drops its copies on reconnect,
 * getOrLoad's single flight and its race with an invalidation, clear,
 * limits, expiry and malformed updates.
 */
import t from 'tap'
import { Cache, type CacheChange } from '../lib/cache/cache.js'
import { CacheEntryTooLargeError } from '../lib/cache/errors.js'
import { InvalidArgumentError } from '../lib/errors.js'
import { startServiceCluster, until, type ServiceNode } from './helpers/service-nodes.js'

t.test('caches', async t => {
  const cluster = await startServiceCluster('cache', ['n1', 'n2', 'n3'])
  const caches: Array<Cache<unknown, unknown>> = []
  t.teardown(async () => {
    for (const c of caches) await c.close()
    await cluster.stop()
  })
  const [n1, n2, n3] = cluster.nodes
  let opened = 0
  /** Opens a fresh cache name on the given nodes and waits until each sees the others subscribed. */
  async function open<V> (mode: 'replicated' | 'invalidation', on: ServiceNode[], opts = {}): Promise<Array<Cache<string, V>>> {
    const name = `test:${mode}-${++opened}`
    const cs = on.map(n => new Cache<string, V>(n.host, name, { mode, ...opts }))
    caches.push(...cs as Array<Cache<unknown, unknown>>)
    await until(`${name} subscribed everywhere`, () => on.every(n => n.mesh.libp2p.services.pubsub.getSubscribers(`raftmesh/cache/${name}`).length === on.length - 1))
    return cs
  }
  const contents = <V>(c: Cache<string, V>): string => JSON.stringify(c.entries().sort(([a], [b]) => a < b ? -1 : 1))

  t.test('replicated: a set reaches every node, many sets travel in few messages, deletes follow', async t => {
    const [a, b, c] = await open<{ n: number }>('replicated', [n1, n2, n3])
    const changes: Array<CacheChange<string, { n: number }>> = []
    b.on('change', ch => changes.push(ch))
    await a.set('k', { n: 1 })
    t.same(a.get('k'), { n: 1 }, 'the writer sees its write at once')
    await until('k on n2 and n3', () => b.get('k')?.n === 1 && c.get('k')?.n === 1)
    t.same(changes, [{ key: 'k', op: 'set', value: { n: 1 }, origin: 'remote' }])
    const N = 2000
    for (let i = 0; i < N; i++) await a.set(`bulk${i}`, { n: i })
    await until('all bulk sets on n3', () => c.size === N + 1)
    t.ok(a.stats().channel.batchesSent < N / 10, `${N} sets went out in ${a.stats().channel.batchesSent} gossip messages`)
    await a.delete('k')
    await until('k deleted on n2 and n3', () => b.get('k') === undefined && c.get('k') === undefined)
    t.same(changes.at(-1), { key: 'k', op: 'delete', value: undefined, origin: 'remote' })
    t.equal(b.stats().staleUpdates, 0)
  })

  t.test('replicated: a node that opens the cache late gets what the others hold', async t => {
    const [a, b] = await open<number>('replicated', [n1, n2])
    for (let i = 0; i < 50; i++) await a.set(`k${i}`, i)
    // After n2 has seen the sets, so its delete is stamped after them.
    await until('n2 has them', () => b.size === 50)
    await b.delete('k7')
    await until('n1 has the delete', () => a.size === 49)
    const late = new Cache<string, number>(n3.host, a.name, { mode: 'replicated' })
    caches.push(late as Cache<unknown, unknown>)
    await until('the late node caught up', () => contents(late) === contents(a) && late.size === 49)
    t.equal(late.get('k7'), undefined, 'the delete came as a tombstone')
  })

  t.test('replicated: keys of every kind reach a late node through anti-entropy unchanged (an entry keeps its key\'s bytes as its id)', async t => {
    const [a] = await open<number>('replicated', [n1])
    const keys: unknown[] = ['ü-€-😀', '\u0000\u00ff', 200, 70_000, -5, 1.5, ['a', 1], { id: 7 }, true, null]
    for (const [i, k] of keys.entries()) await (a as Cache<unknown, number>).set(k, i)
    await (a as Cache<unknown, number>).delete(-5)
    const late = new Cache<unknown, number>(n2.host, a.name, { mode: 'replicated' })
    caches.push(late as Cache<unknown, unknown>)
    await until('the late node caught up', () => late.size === keys.length - 1)
    const got = new Map(late.entries().map(([k, v]) => [JSON.stringify(k), v]))
    t.same(got, new Map(keys.map((k, i) => [JSON.stringify(k), i] as const).filter(([k]) => k !== '-5')))
    t.equal(late.stats().tombstones, 1, 'the delete came too, as a tombstone')
    t.equal(late.stats().repaired, keys.length, 'every write and the delete counted as repaired')
    t.equal(a.stats().repaired, 0, 'nothing new came back')
  })

  t.test('replicated: an update lost with nothing after it is repaired by the periodic exchange', async t => {
    // n1's gossip on this cache is lost (its channel's publish drops it): only anti-entropy can carry the write.
    const deaf = { ...n1.host, channel: (topic: string) => Object.assign(n1.mesh.channel(topic), { publish: () => 0 }) }
    const name = 'test:lost-last-word'
    const a = new Cache<string, string>(deaf, name, { mode: 'replicated', antiEntropyIntervalMs: 200 })
    const b = new Cache<string, string>(n2.host, name, { mode: 'replicated', antiEntropyIntervalMs: 200 })
    caches.push(a as Cache<unknown, unknown>, b as Cache<unknown, unknown>)
    await until('subscribed', () => n1.mesh.libp2p.services.pubsub.getSubscribers(`raftmesh/cache/${name}`).length === 1 && n2.mesh.libp2p.services.pubsub.getSubscribers(`raftmesh/cache/${name}`).length === 1)
    await new Promise(resolve => setTimeout(resolve, 300))
    const syncs = b.stats().syncs + a.stats().syncs
    await a.set('last', 'word')
    await until('n2 has it', () => b.get('last') === 'word')
    t.equal(b.stats().updatesReceived, 0, 'not by gossip')
    t.equal(b.stats().repaired, 1, 'counted as repaired')
    // b applies the pushed entry before a's side of that exchange has counted itself done.
    await until('the exchange that carried it to complete', () => b.stats().syncs + a.stats().syncs > syncs)
    t.pass('by a periodic exchange')
  })

  t.test('replicated: clear() removes every entry on every node', async t => {
    const [a, b, c] = await open<number>('replicated', [n1, n2, n3])
    await a.set('x', 1)
    await b.set('y', 2)
    await until('both on n3', () => c.size === 2)
    await c.clear()
    await until('empty everywhere', () => a.size === 0 && b.size === 0 && c.size === 0)
    await a.set('z', 3)
    await until('a later write is kept', () => c.get('z') === 3 && b.get('z') === 3)
    t.same(b.entries(), [['z', 3]])
  })

  t.test('invalidation: a write drops the other nodes\' copies', async t => {
    const [a, b, c] = await open<string>('invalidation', [n1, n2, n3])
    for (const x of [a, b, c]) await x.getOrLoad('k', async () => 'v1')
    const changes: Array<CacheChange<string, string>> = []
    b.on('change', ch => changes.push(ch))
    await a.set('k', 'v2')
    await until('n2 and n3 dropped k', () => b.get('k') === undefined && c.get('k') === undefined)
    t.equal(a.get('k'), 'v2', 'the writer keeps its own value')
    t.same(changes, [{ key: 'k', op: 'delete', value: undefined, origin: 'remote' }])
  })

  t.test('getOrLoad: concurrent callers share one load', async t => {
    const [a] = await open<string>('invalidation', [n1, n2])
    let loads = 0
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    const loader = async (k: string): Promise<string> => {
      loads++
      await gate
      return `loaded ${k}`
    }
    const calls = Array.from({ length: 10 }, async () => await a.getOrLoad('k', loader))
    await new Promise(resolve => setTimeout(resolve, 20))
    release()
    t.same(await Promise.all(calls), Array(10).fill('loaded k'))
    t.equal(loads, 1, 'the loader ran once')
    t.equal(await a.getOrLoad('k', loader), 'loaded k')
    t.equal(loads, 1, 'then the value is cached')
  })

  for (const mode of ['invalidation', 'replicated'] as const) {
    t.test(`getOrLoad (${mode}): a value loaded while an invalidation arrived is returned, not cached, and not handed to a caller that came after`, async t => {
      const [a, b] = await open<string>(mode, [n1, n2])
      let release!: () => void
      const gate = new Promise<void>(resolve => { release = resolve })
      const loading = a.getOrLoad('k', async () => { await gate; return 'read before the write' })
      const received = a.stats().updatesReceived
      await b.set('k', 'written on n2')
      await until('n1 heard of the write', () => a.stats().updatesReceived > received)
      const after = a.getOrLoad('k', async () => 'read after the write')
      release()
      t.equal(await loading, 'read before the write', 'the caller gets its value')
      t.equal(await after, mode === 'replicated' ? 'written on n2' : 'read after the write', 'a caller that came after the invalidation did not share the stale load')
      t.equal(a.get('k'), mode === 'replicated' ? 'written on n2' : 'read after the write', 'the value loaded before the write was not cached')
      t.equal(a.stats().loadsDiscarded, 1)
    })
  }

  t.test('limits, names and bad updates', async t => {
    const [a, b] = await open<string>('replicated', [n1, n2], { maxKeyBytes: 16, maxValueBytes: 64 })
    await t.rejects(a.set('a key longer than sixteen bytes', 'v'), CacheEntryTooLargeError)
    await t.rejects(a.set('k', 'v'.repeat(100)), { name: 'CacheEntryTooLargeError', part: 'value', limit: 64 })
    t.throws(() => new Cache(n1.host, 'no spaces allowed', { mode: 'replicated' }), InvalidArgumentError)
    t.throws(() => new Cache(n1.host, 'x', { mode: 'local' as 'replicated' }), InvalidArgumentError)
    t.throws(() => new Cache(n1.host, 'x', { mode: 'replicated', maxEntries: 0 }), InvalidArgumentError)
    const rejected = b.stats().rejected
    // A malformed update and one claiming another node's timestamp, published raw by n1.
    const { encodeUpdate } = await import('../lib/cache/cache-codec.js')
    const { encodeChannelBatch } = await import('../gossip/channel-codec.js')
    const pub = n1.mesh.libp2p.services.pubsub
    await pub.publish(`raftmesh/cache/${a.name}`, encodeChannelBatch({ publisher: 'n1', incarnation: 'x-1', firstSeq: 1, items: [new Uint8Array([1, 2, 3]), encodeUpdate({ op: 'set', key: new Uint8Array([0xa1, 0x6b]), value: new Uint8Array([1]), hlc: { ms: Date.now(), c: 0, node: 'n3' } })] }))
    await until('both counted', () => b.stats().rejected === rejected + 2)
    t.equal(b.get('k'), undefined)
  })

  t.test('entries expire after ttlMs and after idleMs unread, by the injected clock', async t => {
    let now = 1_000_000
    const host = cluster.hostWithClock(n1, () => now)
    const ttl = new Cache<string, number>(host, 'test:ttl', { mode: 'invalidation', ttlMs: 1000 })
    const idle = new Cache<string, number>(host, 'test:idle', { mode: 'invalidation', idleMs: 1000 })
    caches.push(ttl as Cache<unknown, unknown>, idle as Cache<unknown, unknown>)
    await ttl.set('k', 1)
    await idle.set('k', 1)
    now += 999
    t.equal(ttl.get('k'), 1)
    t.equal(idle.get('k'), 1, 'read at 999 ms: idle age starts again')
    now += 999
    t.equal(ttl.get('k'), undefined, 'gone 1998 ms after the write')
    t.equal(idle.get('k'), 1, 'still there 999 ms after the last read')
    now += 1001
    t.equal(idle.get('k'), undefined, 'gone 1001 ms after the last read')
  })

  t.test('replicated: writes on both sides of a partition converge to last-writer-wins after it heals', async t => {
    const [a, b, c] = await open<string>('replicated', [n1, n2, n3])
    await a.set('before', 'x')
    await until('before on all', () => c.get('before') === 'x')
    await cluster.faults.partition([n1.mesh], [n2.mesh, n3.mesh])
    await until('the cut is seen', () => n1.mesh.members().length === 0 && n2.mesh.members().length === 1)
    await a.set('both', 'from n1')
    await a.set('n1-only', 'a')
    await a.delete('before')
    await new Promise(resolve => setTimeout(resolve, 5))
    await b.set('both', 'from n2, later')
    await c.set('n3-only', 'c')
    await new Promise(resolve => setTimeout(resolve, 200))
    t.equal(b.get('n1-only'), undefined, 'nothing crosses the cut')
    t.equal(a.get('n3-only'), undefined)
    cluster.faults.heal()
    const expected = JSON.stringify([['both', 'from n2, later'], ['n1-only', 'a'], ['n3-only', 'c']])
    await until('all three hold the merge', () => [a, b, c].every(x => contents(x) === expected))
    t.pass('converged: ' + expected)
  })

  t.test('invalidation: a node cut off from the mesh drops its copies when it reconnects', async t => {
    const [a, b, c] = await open<string>('invalidation', [n1, n2, n3])
    for (const x of [a, b, c]) await x.getOrLoad('k', async () => 'v1')
    await c.getOrLoad('other', async () => 'o1')
    await cluster.faults.isolate(n3.mesh)
    await until('n3 is cut off', () => n3.mesh.members().length === 0 && n1.mesh.members().length === 1)
    await a.set('k', 'v2')
    await until('n2 dropped k', () => b.get('k') === undefined)
    await new Promise(resolve => setTimeout(resolve, 200))
    t.equal(c.get('k'), 'v1', 'while cut off, n3 cannot hear the invalidation')
    cluster.faults.heal()
    await until('n3 dropped its copies', () => c.size === 0)
    t.ok(c.stats().droppedAll > 0)
  })
})
