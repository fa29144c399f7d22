import t from 'tap'
import type { ClusterEvent } from '../lib/index.js'
import { eventually, startClusters } from './helpers/clusters.js'

t.test('a Cluster hands out caches and events to every node', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const [a, b, d] = c.nodes

  t.test('a replicated cache set on one node is read on the others', async t => {
    const ca = a.cache<string, { name: string }>('concepts', { mode: 'replicated' })
    const cb = b.cache<string, { name: string }>('concepts', { mode: 'replicated' })
    t.equal(a.cache('concepts', { mode: 'replicated' }), ca, 'one instance per name')
    t.throws(() => a.cache('concepts', { mode: 'invalidation' }), { name: 'InvalidArgumentError' })
    await ca.set('c1', { name: 'Weight (kg)' })
    await eventually(() => cb.get('c1')?.name === 'Weight (kg)', 15_000, 'the set to reach b')
    t.pass('replicated to b')
  })

  t.test('ordered events reach every node in one total order, with the log index as seq', async t => {
    const seen: Array<Array<{ topic: string, seq: number, publisher: string }>> = [[], [], []]
    const offs = c.nodes.map((n, i) => n.events.subscribe('order.#', (e: ClusterEvent) => { seen[i].push({ topic: e.topic, seq: e.seq, publisher: e.publisher }) }))
    await Promise.all([
      a.events.publish('order.a', { n: 1 }, { ordered: true }),
      b.events.publish('order.b', { n: 2 }, { ordered: true }),
      d.events.publish('order.d', { n: 3 }, { ordered: true })
    ])
    await eventually(() => seen.every(s => s.length === 3), 15_000, 'three ordered events on every node')
    t.same(seen[1], seen[0], 'b saw the same order as a')
    t.same(seen[2], seen[0], 'd saw the same order as a')
    t.same(seen[0].map(e => e.publisher).sort(), ['n1', 'n2', 'n3'], 'each event names the node that published it')
    for (const off of offs) off()
  })

  t.test('unordered events reach every subscribed node', async t => {
    const got: string[] = []
    const off = d.events.subscribe('encounter.*', e => { got.push(`${e.publisher}:${e.topic}`) })
    await a.events.publish('encounter.saved', { id: 7 })
    await eventually(() => got.length === 1, 15_000, 'the event at d')
    t.same(got, ['n1:encounter.saved'])
    off()
  })
})
