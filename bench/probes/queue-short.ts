/**
 * The queues bench's workload (bench/queue-workload.ts) shortened, on
 * raftmesh alone: for comparing two builds of this repository side by side
 * (run it from each checkout in turn).
 *
 *   node --import tsx bench/probes/queue-short.ts
 */
import { runQueueWorkload } from '../queue-workload.js'
import { startRaftmesh } from '../queues.js'

const side = await startRaftmesh()
try {
  const r = await runQueueWorkload(side, { warmupSeconds: 3, enqueueSeconds: 4, enqueueMaxCount: 30_000, endToEndCount: 15_000, latencySeconds: 4 })
  console.log(JSON.stringify({ enqueuePerSecond: Math.round(r.enqueue.perSecond), drainPerSecond: Math.round(r.enqueue.drain?.perSecond ?? 0), endToEndPerSecond: Math.round(r.endToEnd.perSecond), startP50Ms: r.latency.p50Ms, startP99Ms: r.latency.p99Ms, ackP50Ms: r.latency.enqueueAck.p50Ms, ackP99Ms: r.latency.enqueueAck.p99Ms }))
} finally {
  await side.stop()
}
