/**
 * One mesh node of `npm run bench -- gossip`, driven over IPC by
 * bench/gossip.ts. Every node joins the channel; the bench picks one as the
 * publisher and the others record, per message, the delivery latency.
 *
 * Usage (spawned with an IPC channel, structured-clone serialization):
 *   node --import tsx bench/procs/gossip-peer.ts '<{"nodeId","clusterName","dataDir","topic","listen","bootstrap",...}>'
 * The cluster secret comes in RAFTMESH_BENCH_SECRET. Sends {type:'ready',
 * peerId, multiaddrs} once started (and prints it); stops when the IPC
 * channel closes.
 *
 * A payload carries its publish time and its place in the run:
 *   f64 publish time (performance.timeOrigin + performance.now(), ms) | u32 phase | u32 index | filler
 * All processes run on one machine, so receivers subtract that time from
 * their own clock; the bench checks the clocks agree (the `clock` request).
 *
 * Requests ({id, type, ...} → {id, ...}):
 *   status            members alive, channel peers, gossipsub mesh peers
 *   clock             this process's clock and CPU time used so far
 *   expect {phase, capacity}   start recording `phase` (receivers)
 *   progress          messages of the current phase delivered so far
 *   report {count}    the recorded latencies of the first `count` messages (Float64Array, NaN = not delivered),
 *                     gaps, channel stats, and since `expect`: connections closed,
 *                     members failed, the longest event-loop stall
 *   publish {phase, mode: 'paced', count, intervalMs, size}
 *           {phase, mode: 'flood', maxCount, seconds, size, chunk, window?}
 *                     publish and answer once all is handed to gossipsub
 *   credit {upTo}     (no answer) a windowed flood may publish up to index upTo
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createMeshNode } from '../../gossip/node.js'
import { exitWithParent } from './lifecycle.js'

interface PeerArgs { nodeId: string, clusterName: string, dataDir: string, topic: string, listen: string, bootstrap: string[], batchBytes?: number, batchDelayMs?: number }
interface Request { id: number, type: string, [k: string]: unknown }

if (process.send === undefined) {
  console.error('gossip-peer must be spawned with an IPC channel')
  process.exit(2)
}
const send = (m: object): void => { if (process.connected) process.send?.(m) }
const args = JSON.parse(process.argv[2] ?? '{}') as PeerArgs
const secret = process.env.RAFTMESH_BENCH_SECRET ?? ''
const clock = (): number => performance.timeOrigin + performance.now()

const mesh = await createMeshNode({ nodeId: args.nodeId, clusterName: args.clusterName, appVersion: 'bench', dataDir: args.dataDir, secret, listen: [args.listen], bootstrap: args.bootstrap })
const channel = mesh.channel(args.topic, { batchBytes: args.batchBytes, batchDelayMs: args.batchDelayMs })

// What this node records for the current phase.
let phase = -1
let latency = new Float64Array(0)
let delivered = 0
let outOfRange = 0
let foreign = 0
let lastArrival = 0
let gaps = 0
let gapMessages = 0
// Trouble that explains losses: connections closed, members failed (e.g. a
// ping timing out while the event loop was stalled), event-loop delay.
let connectionsClosed = 0
let membersFailed = 0
const loopDelay = monitorEventLoopDelay({ resolution: 10 })
loopDelay.enable()
mesh.libp2p.addEventListener('connection:close', () => { connectionsClosed++ })
mesh.membership.on('failed', () => { membersFailed++ })

channel.on('message', m => {
  const now = clock()
  if (m.payload.byteLength < 16) { foreign++; return }
  const v = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength)
  if (v.getUint32(8) !== phase) { foreign++; return }
  const i = v.getUint32(12)
  if (i >= latency.length) { outOfRange++; return }
  if (Number.isNaN(latency[i])) delivered++
  latency[i] = now - v.getFloat64(0)
  lastArrival = now
})
channel.on('gap', g => {
  gaps++
  gapMessages += g.to - g.from + 1
})

function trouble (): { connectionsClosed: number, membersFailed: number, loopDelayMaxMs: number } {
  return { connectionsClosed, membersFailed, loopDelayMaxMs: Math.round(loopDelay.max / 1e4) / 100 }
}

/** The GossipSub interface does not expose the mesh; the implementation does. */
function meshPeers (): number {
  const ps = mesh.libp2p.services.pubsub as unknown as { getMeshPeers?: (topic: string) => string[] }
  return typeof ps.getMeshPeers === 'function' ? ps.getMeshPeers(args.topic).length : -1
}

function payload (size: number, ph: number, index: number): Uint8Array {
  const p = new Uint8Array(Math.max(16, size))
  const v = new DataView(p.buffer)
  v.setUint32(8, ph)
  v.setUint32(12, index)
  p.fill(7, 16)
  v.setFloat64(0, clock())
  return p
}

async function publishPaced (ph: number, count: number, intervalMs: number, size: number): Promise<object> {
  const first = clock()
  const start = performance.now()
  const hardEnd = start + count * intervalMs + 60_000
  let i = 0
  while (i < count && performance.now() < hardEnd) {
    // Publish what is due (catching up after a late timer), then sleep until the next one.
    while (i < count && performance.now() >= start + i * intervalMs) channel.publish(payload(size, ph, i++))
    const wait = start + i * intervalMs - performance.now()
    if (i < count) await new Promise(resolve => setTimeout(resolve, Math.max(0, wait)))
  }
  const last = clock()
  await channel.flush()
  return { published: i, firstPublish: first, lastPublish: last }
}

/**
 * As fast as the channel takes them: one full batch, handed to gossipsub,
 * then one turn of the event loop. With `window`, only while fewer than
 * `window` messages are published and not yet delivered by the slowest
 * receiver: the bench relays the receivers' progress as `credit` (publish
 * up to that index). Without, nothing pushes back.
 */
async function publishFlood (ph: number, maxCount: number, seconds: number, size: number, chunk: number, window: number | null): Promise<object> {
  credit = window ?? Infinity
  const first = clock()
  const end = performance.now() + seconds * 1000
  let i = 0
  let waits = 0
  while (i < maxCount && performance.now() < end) {
    if (credit - i < Math.min(chunk, maxCount - i)) {
      waits++
      await new Promise<void>(resolve => { creditWaiter = resolve; setTimeout(resolve, 20) })
      creditWaiter = null
      continue
    }
    for (let k = 0; k < chunk && i < maxCount; k++) channel.publish(payload(size, ph, i++))
    await channel.flush()
    await new Promise(resolve => setImmediate(resolve))
  }
  const last = clock()
  await channel.flush()
  return { published: i, firstPublish: first, lastPublish: last, creditWaits: waits }
}

let credit = Infinity
let creditWaiter: (() => void) | null = null

exitWithParent(async () => {
  await channel.close()
  await mesh.stop()
})
// Still die of it, but tell the bench why first (it reports crashes).
let crashed = false
process.on('uncaughtException', err => {
  if (crashed) return
  crashed = true
  console.error(err)
  send({ type: 'crash', error: String(err.stack ?? err).split('\n').slice(0, 3).map(l => l.trim()).join(' | ') })
  setTimeout(() => process.exit(70), 100)
})

process.on('message', (req: Request) => {
  if (req.type === 'credit') {
    credit = Math.max(credit, req.upTo as number)
    creditWaiter?.()
    return
  }
  void (async () => {
    switch (req.type) {
      case 'status':
        send({ id: req.id, members: mesh.members().length, connections: mesh.libp2p.getConnections().length, channelPeers: channel.peers().length, meshPeers: meshPeers() })
        break
      case 'clock':
        send({ id: req.id, now: clock(), cpu: process.cpuUsage() })
        break
      case 'expect':
        phase = req.phase as number
        latency = new Float64Array(req.capacity as number).fill(NaN)
        delivered = outOfRange = foreign = lastArrival = gaps = gapMessages = connectionsClosed = membersFailed = 0
        loopDelay.reset()
        send({ id: req.id })
        break
      case 'progress':
        send({ id: req.id, delivered, gaps })
        break
      case 'report':
        send({ id: req.id, delivered, outOfRange, foreign, lastArrival, gaps, gapMessages, latency: latency.slice(0, req.count as number), channel: channel.stats(), ...trouble() })
        break
      case 'publish': {
        const r = req.mode === 'paced'
          ? await publishPaced(req.phase as number, req.count as number, req.intervalMs as number, req.size as number)
          : await publishFlood(req.phase as number, req.maxCount as number, req.seconds as number, req.size as number, req.chunk as number, (req.window as number | undefined) ?? null)
        send({ id: req.id, ...r, channel: channel.stats(), ...trouble() })
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
