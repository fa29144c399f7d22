/**
 * One node of `npm run bench -- cache`, driven over IPC by bench/cache.ts:
 * a mesh node, its RPC endpoint and one replicated cache. Every node
 * records, per key of the current phase, the time from the writer's set()
 * to the change event here (values carry their write time; all processes
 * share the machine's clock).
 *
 * Usage (spawned with an IPC channel, structured-clone serialization):
 *   node --import tsx bench/procs/cache-peer.ts '<{"nodeId","clusterName","dataDir","listen","bootstrap"}>'
 * The cluster secret comes in RAFTMESH_BENCH_SECRET. Sends {type:'ready'}
 * once started; stops when the IPC channel closes.
 *
 * Requests ({id, type, ...} → {id, ...}):
 *   status                      members alive, cache channel subscribers
 *   expect {phase, capacity}    start recording keys `<phase>:<index>`
 *   progress                    keys of the phase delivered so far
 *   report {count}              latencies (Float64Array, NaN = not delivered), last arrival, cache stats
 *   set {phase, mode: 'paced', count, intervalMs, size} | {phase, mode: 'flood', count, chunk, size}
 */
import { createMeshNode } from '../../gossip/node.js'
import { silentLogger } from '../../gossip/logger.js'
import { MeshRpc } from '../../gossip/rpc.js'
import { Cache } from '../../lib/cache/cache.js'
import { exitWithParent } from './lifecycle.js'

interface PeerArgs { nodeId: string, clusterName: string, dataDir: string, listen: string, bootstrap: string[] }
interface Request { id: number, type: string, [k: string]: unknown }
interface Value { t: number, pad: string }

if (process.send === undefined) {
  console.error('cache-peer must be spawned with an IPC channel')
  process.exit(2)
}
const send = (m: object): void => { if (process.connected) process.send?.(m) }
const args = JSON.parse(process.argv[2] ?? '{}') as PeerArgs
const clock = (): number => performance.timeOrigin + performance.now()
const TOPIC = 'raftmesh/cache/bench'

const mesh = await createMeshNode({ nodeId: args.nodeId, clusterName: args.clusterName, appVersion: 'bench', dataDir: args.dataDir, secret: process.env.RAFTMESH_BENCH_SECRET ?? '', listen: [args.listen], bootstrap: args.bootstrap })
const rpc = await MeshRpc.create(mesh)
const cache = new Cache<string, Value>({ nodeId: args.nodeId, mesh, channel: (topic, opts) => mesh.channel(topic, opts), calls: rpc, logger: silentLogger, clock: Date.now }, 'bench', { mode: 'replicated', maxEntries: 1_000_000 })

let phase = ''
let latency = new Float64Array(0)
let delivered = 0
let lastArrival = 0
cache.on('change', c => {
  if (c.origin !== 'remote' || c.op !== 'set' || c.value === undefined) return
  const now = clock()
  const [ph, index] = c.key.split(':')
  if (ph !== phase) return
  const i = Number(index)
  if (!(i < latency.length)) return
  if (Number.isNaN(latency[i])) delivered++
  latency[i] = now - c.value.t
  lastArrival = now
})

async function setPaced (ph: string, count: number, intervalMs: number, pad: string): Promise<object> {
  const first = clock()
  const start = performance.now()
  let i = 0
  while (i < count) {
    while (i < count && performance.now() >= start + i * intervalMs) await cache.set(`${ph}:${i++}`, { t: clock(), pad })
    if (i < count) await new Promise(resolve => setTimeout(resolve, Math.max(0, start + i * intervalMs - performance.now())))
  }
  return { published: i, firstSet: first, lastSet: clock() }
}

/** As fast as set() takes them, one turn of the event loop every `chunk`. */
async function setFlood (ph: string, count: number, chunk: number, pad: string): Promise<object> {
  const first = clock()
  for (let i = 0; i < count;) {
    for (let k = 0; k < chunk && i < count; k++) await cache.set(`${ph}:${i++}`, { t: clock(), pad })
    await new Promise(resolve => setImmediate(resolve))
  }
  return { published: count, firstSet: first, lastSet: clock() }
}

exitWithParent(async () => {
  await cache.close()
  await rpc.close()
  await mesh.stop()
})

process.on('message', (req: Request) => {
  void (async () => {
    switch (req.type) {
      case 'status':
        send({ id: req.id, members: mesh.members().length, subscribers: mesh.libp2p.services.pubsub.getSubscribers(TOPIC).length })
        break
      case 'expect':
        phase = req.phase as string
        latency = new Float64Array(req.capacity as number).fill(NaN)
        delivered = lastArrival = 0
        send({ id: req.id })
        break
      case 'progress':
        send({ id: req.id, delivered })
        break
      case 'report':
        send({ id: req.id, delivered, lastArrival, latency: latency.slice(0, req.count as number), stats: cache.stats() })
        break
      case 'set': {
        const pad = 'x'.repeat(req.size as number)
        const r = req.mode === 'paced'
          ? await setPaced(req.phase as string, req.count as number, req.intervalMs as number, pad)
          : await setFlood(req.phase as string, req.count as number, req.chunk as number, pad)
        send({ id: req.id, ...r, stats: cache.stats() })
        break
      }
      default:
        send({ id: req.id, error: `unknown request ${req.type}` })
    }
  })().catch(err => { send({ id: req.id, error: String(err) }) })
})

const ready = { type: 'ready', peerId: mesh.peerId, multiaddrs: mesh.multiaddrs }
process.stdout.write(JSON.stringify(ready) + '\n')
send(ready)
