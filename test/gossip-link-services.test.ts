/**
 * The services on two real mesh nodes whose gossip link breaks while their
 * connection stays up (each gossipsub drops the other, as after the stream
 * reset of seed 3044 of the faults bench), with the link watcher held off
 * so the link stays silent: the channel still lists the other as a peer,
 * the events head check fetches what was published behind the silence,
 * replicated anti-entropy carries writes across it; and once the watcher
 * makes the link whole, an invalidation cache that missed an invalidation
 * drops its copies.
 */
import t, { type Test } from 'tap'
import { Cache } from '../lib/cache/cache.js'
import { EventBus, type ClusterEvent } from '../lib/events/events.js'
import { loadOrCreatePeerKey } from '../gossip/peer-key.js'
import { silentLogger } from '../gossip/logger.js'
import { join } from 'node:path'
import { onPeerReconnect } from '../lib/service-host.js'
import { startServiceCluster, until, type ServiceNode } from './helpers/service-nodes.js'

t.test('services across a gossip link that broke while the connection stayed up', async t => {
  const cluster = await startServiceCluster('silent-link', ['n1', 'n2'])
  const closers: Array<() => Promise<void>> = []
  t.teardown(async () => {
    for (const c of closers) await c()
    await cluster.stop()
  })
  const [n1, n2] = cluster.nodes
  const nodes = [n1, n2]
  const subscribers = (n: ServiceNode, topic: string): number => n.mesh.libp2p.services.pubsub.getSubscribers(topic).length
  const connections = (): string => nodes.map(n => n.mesh.libp2p.getConnections().map(c => c.id).join()).join('|')

  /** Both read streams fail at once: each gossipsub drops the other, the connection stays. The watcher is held off until the test ends. */
  async function silence (t: Test, topic: string): Promise<void> {
    t.teardown(relink)
    await until('both links whole', () => n1.mesh.gossipLinks.isUp('n2') && n2.mesh.gossipLinks.isUp('n1'))
    for (const n of nodes) n.mesh.gossipLinks.stop()
    for (const n of nodes) {
      for (const s of n.mesh.libp2p.getConnections().flatMap(c => c.streams)) {
        if (s.protocol.startsWith('/meshsub/') && s.direction === 'inbound') s.abort(new Error('a stream error'))
      }
    }
    await until('neither gossipsub lists the other', () => nodes.every(n => subscribers(n, topic) === 0))
  }
  async function relink (): Promise<void> {
    for (const n of nodes) n.mesh.gossipLinks.start()
    await until('both links whole again', () => n1.mesh.gossipLinks.isUp('n2') && n2.mesh.gossipLinks.isUp('n1'))
  }

  t.test('a link made whole again counts as a reconnect for the services', async t => {
    const seen: string[] = []
    const off = onPeerReconnect(n1.mesh, 'test/any', id => { seen.push(id) })
    n1.mesh.gossipLinks.emit('relinked', 'n2')
    off()
    n1.mesh.gossipLinks.emit('relinked', 'n2')
    t.same(seen, ['n2'])
  })

  t.test('events: the head check fetches what was published behind the silent link', async t => {
    const topic = 'test/silent-events'
    const bus = await Promise.all(nodes.map(async n => new EventBus(n.host, { privateKey: await loadOrCreatePeerKey(join(cluster.root, n.mesh.nodeId), silentLogger), topic, headCheckMs: 200 })))
    closers.push(async () => { for (const b of bus) await b.close() })
    await until('each bus follows the other', () => bus.every(b => b.stats().publishers === 1))
    const got: ClusterEvent[] = []
    bus[1].subscribe('#', e => { got.push(e) })
    const before = connections()
    const raw = nodes.map(n => n.mesh.channel('test/silent-raw'))
    closers.push(async () => { for (const c of raw) await c.close() })
    const channel = raw[1]
    await until('the raw channel sees n1', () => channel.peers().length === 1)
    await silence(t, topic)
    t.same(channel.peers(), ['n1'], 'the channel still lists n1, which gossipsub dropped')
    await bus[0].publish('a', 1)
    await bus[0].publish('a', 2)
    await until('n2 has both events', () => got.length === 2)
    t.same(got.map(e => e.payload), [1, 2])
    t.equal(bus[1].stats().repaired, 2, 'fetched by the head check: gossip did not carry them')
    t.equal(connections(), before, 'the connection stayed up throughout')
  })

  t.test('replicated cache: anti-entropy carries a write across the silent link', async t => {
    const name = 'test:silent-replicated'
    const [a, b] = nodes.map(n => new Cache<string, string>(n.host, name, { mode: 'replicated', antiEntropyIntervalMs: 200 }))
    closers.push(async () => { await a.close(); await b.close() })
    await until('subscribed', () => nodes.every(n => subscribers(n, `raftmesh/cache/${name}`) === 1))
    await silence(t, `raftmesh/cache/${name}`)
    await a.set('k', 'v')
    await until('n2 has the write', () => b.get('k') === 'v')
    t.equal(b.stats().updatesReceived, 0, 'not by gossip')
  })

  t.test('invalidation cache: the copy that missed an invalidation is dropped once the link is whole again', async t => {
    const name = 'test:silent-invalidation'
    const [a, b] = nodes.map(n => new Cache<string, string>(n.host, name, { mode: 'invalidation' }))
    closers.push(async () => { await a.close(); await b.close() })
    await until('subscribed', () => nodes.every(n => subscribers(n, `raftmesh/cache/${name}`) === 1))
    await b.getOrLoad('k', async () => 'v1')
    await b.getOrLoad('other', async () => 'o1')
    await silence(t, `raftmesh/cache/${name}`)
    await a.set('k', 'v2')
    await new Promise(resolve => setTimeout(resolve, 200))
    t.equal(b.get('k'), 'v1', 'behind the silent link n2 cannot hear the invalidation')
    await relink()
    await until('n2 dropped its copies', () => b.size === 0)
    t.ok(b.stats().droppedAll > 0)
    await a.set('k', 'v3')
    await b.getOrLoad('k', async () => 'v3')
    await a.delete('k')
    await until('invalidations flow again', () => b.get('k') === undefined)
  })
})
