/**
 * One process of the Redis rows of `npm run bench -- cache` / `-- events`:
 * what a Node user would wire up by hand instead of raftmesh. A local Map
 * per cache, and Redis pub/sub (Debian's redis-server, bench/redis-server.ts)
 * to tell the other processes: a set publishes the key and value, a delete of
 * the invalidation cache publishes the key, an event is one message. One
 * ioredis client per process for publishing, and its duplicate() for
 * subscribing (a subscribed Redis connection can do nothing else), both
 * with ioredis's defaults (no auto-pipelining, reconnect and resubscribe on
 * a broken connection). Messages are JSON. Requests as for the raftmesh
 * peer (bench/procs/fanout-peer.ts).
 *
 * The partition phase's store is last-writer-wins on a hybrid logical clock
 * (lib/cache/hlc.ts; node id breaks ties), as careful hand-written code
 * would do; nothing repairs a message that never arrived.
 *
 * Usage (spawned with an IPC channel, structured-clone serialization):
 *   node --import tsx bench/procs/redis-peer.ts '<{"nodeId","host","port"}>'
 */
import { Redis } from 'ioredis'
import { compareHlc, HybridClock, type Hlc } from '../../lib/cache/hlc.js'
import { Arrivals, servePeer, type ConvTag, type ItemKind, type PeerImpl } from './fanout-peer.js'
import { exitWithParent } from './lifecycle.js'

interface PeerArgs { nodeId: string, host: string, port: number }
interface Message { o: string, k: string, v?: unknown, h?: Hlc }

if (process.send === undefined) {
  console.error('redis-peer must be spawned with an IPC channel')
  process.exit(2)
}
const args = JSON.parse(process.argv[2] ?? '{}') as PeerArgs
const CHANNELS: Record<ItemKind | 'conv', string> = { cache: 'bench:cache', inv: 'bench:inv', event: 'bench:event', conv: 'bench:conv' }

const pub = new Redis({ host: args.host, port: args.port, lazyConnect: true })
const sub = pub.duplicate()
await pub.connect()
await sub.connect()
const cache = new Map<string, unknown>()
const inv = new Map<string, number>()
const conv = new Map<string, { tag: ConvTag, h: Hlc }>()
const clock = new HybridClock(args.nodeId, Date.now)
const arrivals = new Arrivals()
const counts = { published: 0, received: 0, malformed: 0, staleConv: 0 }

sub.on('message', (channel: string, text: string) => {
  let m: Message
  try {
    m = JSON.parse(text) as Message
  } catch {
    counts.malformed++
    return
  }
  if (m.o === args.nodeId) return
  counts.received++
  switch (channel) {
    case CHANNELS.cache:
      cache.set(m.k, m.v)
      arrivals.arrived('cache', m.k)
      break
    case CHANNELS.inv:
      inv.delete(m.k)
      arrivals.arrived('inv', m.k)
      break
    case CHANNELS.event:
      arrivals.arrived('event', m.k)
      break
    case CHANNELS.conv: {
      if (m.h === undefined) break
      const held = conv.get(m.k)
      if (held !== undefined && compareHlc(held.h, m.h) >= 0) counts.staleConv++
      else conv.set(m.k, { tag: m.v as ConvTag, h: m.h })
      break
    }
  }
})
const subscribed = sub.subscribe(...Object.values(CHANNELS)).then(() => true)

/** Publishes without waiting for each reply, as an application would; failures are counted, and flush() waits for all. */
let pending: Array<Promise<unknown>> = []
const failures = { publish: 0, lastError: '' }
function publish (channel: string, m: Message): void {
  counts.published++
  pending.push(pub.publish(channel, JSON.stringify(m)).catch((err: unknown) => { failures.publish++; failures.lastError = String(err) }))
}
async function flush (): Promise<void> {
  const p = pending
  pending = []
  await Promise.all(p)
}

const impl: PeerImpl = {
  status: async () => ({ ready: await subscribed && pub.status === 'ready' && sub.status === 'ready' }),
  prepare: async (phase, kind, capacity) => {
    if (kind === 'inv') for (let i = 0; i < capacity; i++) inv.set(`${phase}:${i}`, i)
  },
  write: async (kind, key, _index, pad) => {
    if (kind === 'cache') {
      const v = { pad }
      cache.set(key, v)
      publish(CHANNELS.cache, { o: args.nodeId, k: key, v })
    } else if (kind === 'inv') {
      inv.delete(key)
      publish(CHANNELS.inv, { o: args.nodeId, k: key })
    } else {
      publish(CHANNELS.event, { o: args.nodeId, k: key, v: { pad } })
    }
    // Back-pressure: no more than 1,000 replies outstanding.
    if (pending.length >= 1000) await flush()
  },
  flush,
  convWrite: async (key, tag, pad) => {
    const h = clock.now()
    conv.set(key, { tag, h })
    publish(CHANNELS.conv, { o: args.nodeId, k: key, v: { ...tag, pad }, h })
    return [h.ms, h.c, h.node]
  },
  convEntries: () => [...conv.entries()].map(([k, e]) => [k, { w: e.tag.w, n: e.tag.n }]),
  stats: () => ({ ...counts, ...failures, pubStatus: pub.status, subStatus: sub.status })
}
servePeer(args.nodeId, impl, arrivals)

exitWithParent(async () => {
  pub.disconnect()
  sub.disconnect()
})

const ready = { type: 'ready' }
process.stdout.write(JSON.stringify(ready) + '\n')
process.send?.(ready)
