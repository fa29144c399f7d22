/**
 * One raftmesh node of `npm run bench -- cache` / `-- events`, driven over
 * IPC by bench/cache.ts (the requests: bench/procs/fanout-peer.ts): a mesh
 * node, its RPC endpoint, and on them the services the rows measure, as a
 * Cluster builds them (lib/service-host.ts) but without the Raft log,
 * which none of them uses: a replicated cache `bench`, an invalidation
 * cache `inv`, the event bus, and a replicated cache `conv` for the
 * partition phase.
 *
 * Usage (spawned with an IPC channel, structured-clone serialization):
 *   node --import tsx bench/procs/cache-peer.ts '<{"nodeId","clusterName","dataDir","listen","bootstrap"}>'
 * The cluster secret comes in RAFTMESH_BENCH_SECRET. Sends {type:'ready', peerId}
 * once started; stops when the IPC channel closes.
 *
 * The partition phase's writes are answered with their hybrid-logical-clock
 * stamp: the cache's clock reads a wall-clock value frozen for the length of
 * each set(), and a HybridClock here, fed the same value, follows it
 * exactly while no other node's write of `conv` reaches this one (the
 * bench writes `conv` only while the two writers are cut apart).
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { silentLogger } from '../../gossip/logger.js'
import { createMeshNode } from '../../gossip/node.js'
import { loadOrCreatePeerKey } from '../../gossip/peer-key.js'
import { MeshRpc } from '../../gossip/rpc.js'
import { Cache } from '../../lib/cache/cache.js'
import { HybridClock } from '../../lib/cache/hlc.js'
import { EventBus } from '../../lib/events/events.js'
import type { ServiceHost } from '../../lib/service-host.js'
import { Arrivals, servePeer, type ConvTag, type ItemKind, type PeerImpl } from './fanout-peer.js'
import { exitWithParent } from './lifecycle.js'

interface PeerArgs { nodeId: string, clusterName: string, dataDir: string, listen: string, bootstrap: string[] }

if (process.send === undefined) {
  console.error('cache-peer must be spawned with an IPC channel')
  process.exit(2)
}
const args = JSON.parse(process.argv[2] ?? '{}') as PeerArgs

const mesh = await createMeshNode({ nodeId: args.nodeId, clusterName: args.clusterName, appVersion: 'bench', dataDir: args.dataDir, secret: process.env.RAFTMESH_BENCH_SECRET ?? '', listen: [args.listen], bootstrap: args.bootstrap })
const rpc = await MeshRpc.create(mesh)
let frozenWall: number | null = null
const wall = (): number => frozenWall ?? Date.now()
const host: ServiceHost = { nodeId: args.nodeId, mesh, channel: (topic, opts) => mesh.channel(topic, opts), calls: rpc, logger: silentLogger, clock: wall }
const cache = new Cache<string, { pad: string }>(host, 'bench', { mode: 'replicated', maxEntries: 1_000_000 })
const inv = new Cache<string, number>(host, 'inv', { mode: 'invalidation', maxEntries: 1_000_000 })
const conv = new Cache<string, ConvTag & { pad: string }>(host, 'conv', { mode: 'replicated', maxEntries: 100_000 })
// The subscriber's queue is sized for the flood, not the default 1,000: a drop would be the bench's doing.
const events = new EventBus(host, { privateKey: await loadOrCreatePeerKey(args.dataDir, silentLogger), maxQueue: 1_000_000 })
const convClock = new HybridClock(args.nodeId, wall)
const arrivals = new Arrivals()

cache.on('change', c => { if (c.origin === 'remote' && c.op === 'set') arrivals.arrived('cache', c.key) })
inv.on('change', c => { if (c.origin === 'remote' && c.op === 'delete') arrivals.arrived('inv', c.key) })
events.subscribe<{ key: string }>('bench.*', e => { if (e.publisher !== args.nodeId) arrivals.arrived('event', e.payload.key) })

/** Publishes not yet returned (at most 1,000, as the Redis peer's), and those that failed. */
let pending: Array<Promise<unknown>> = []
const failures = { publish: 0, lastError: '' }
async function flush (): Promise<void> {
  const p = pending
  pending = []
  await Promise.all(p)
}

const TOPICS = ['raftmesh/cache/bench', 'raftmesh/cache/inv', 'raftmesh/cache/conv', 'raftmesh/events']

const impl: PeerImpl = {
  status: async () => {
    const pubsub = mesh.libp2p.services.pubsub
    const subscribers = Math.min(...TOPICS.map(t => pubsub.getSubscribers(t).length))
    return { ready: true, members: mesh.members().length, subscribers }
  },
  prepare: async (phase: string, kind: ItemKind, capacity: number) => {
    if (kind !== 'inv') return
    // Each receiver holds every key it will be told to drop, loaded as from the database (no broadcast).
    for (let i = 0; i < capacity; i++) await inv.getOrLoad(`${phase}:${i}`, async () => i)
  },
  write: async (kind, key, _index, pad) => {
    if (kind === 'cache') await cache.set(key, { pad })
    else if (kind === 'inv') await inv.delete(key)
    else {
      // As an application publishing from many requests at once would, not one publish after another's return.
      pending.push(events.publish(`bench.${key.slice(0, key.lastIndexOf(':'))}`, { key, pad }).catch((err: unknown) => { failures.publish++; failures.lastError = String(err) }))
      if (pending.length >= 1000) await flush()
    }
  },
  flush,
  convWrite: async (key, tag, pad) => {
    frozenWall = Date.now()
    try {
      const h = convClock.now()
      await conv.set(key, { ...tag, pad })
      return [h.ms, h.c, h.node]
    } finally {
      frozenWall = null
    }
  },
  convEntries: () => conv.entries().map(([k, v]) => [k, { w: v.w, n: v.n }]),
  stats: () => ({ cache: cache.stats(), inv: inv.stats(), conv: conv.stats(), events: events.stats(), ...failures }),
  partition: async deny => {
    mesh.gate.deny(deny)
    await Promise.all(deny.map(async p => { await mesh.libp2p.hangUp(peerIdFromString(p)).catch(() => {}) }))
  },
  heal: async () => {
    mesh.gate.allowAll()
    mesh.redialNow()
  }
}
servePeer(args.nodeId, impl, arrivals)

exitWithParent(async () => {
  await events.close()
  await Promise.all([cache.close(), inv.close(), conv.close()])
  await rpc.close()
  await mesh.stop()
})

const ready = { type: 'ready', peerId: mesh.peerId, multiaddrs: mesh.multiaddrs }
process.stdout.write(JSON.stringify(ready) + '\n')
process.send?.(ready)
