/**
 * The queues bench's latency row on raftmesh alone, split by where the item
 * was enqueued (the leader's process or a follower's) and where it started:
 * enqueue-acknowledged p50 per producer, enqueue-to-start p50 per
 * (producer, worker) pair, and the overall start p50, p99 and max. For
 * finding which path the row's median comes from.
 *
 *   node --import tsx bench/probes/queue-latency-split.ts [seconds] [ratePerProcess]
 */
import { machineNow } from '../../testkit/cluster-node-protocol.js'
import { Latency, type LatencySummary } from '../latency.js'
import { waitAcked } from '../queue-workload.js'
import { startRaftmesh } from '../queues.js'

const seconds = Number(process.argv[2] ?? 8)
const rate = Number(process.argv[3] ?? 100)
const summary = (xs: Iterable<number>): LatencySummary => {
  const l = new Latency()
  for (const x of xs) l.record(x)
  return l.summary()
}

const side = await startRaftmesh()
try {
  const peers = side.peers
  const victim = await side.victim()
  const statuses = await Promise.all(peers.map(async p => await p.call<{ node: string, leader: string | null }>({ type: 'status' })))
  const leaderIdx = statuses.findIndex(s => s.node === s.leader)
  const role = (i: number): string => `${peers[i].name}${i === leaderIdx ? '(leader)' : ''}`
  const every = [0, 1, 2]
  const work = async (queue: string): Promise<void> => { await Promise.all(every.map(async i => await peers[i].call({ type: 'work', queue, concurrency: 16, visibilityMs: 10_000, hold: false }))) }
  const stopWork = async (queue: string): Promise<void> => { await Promise.all(every.map(async i => await peers[i].call({ type: 'stop-work', queue }))) }
  await work('warmup')
  const warm = await Promise.all(peers.map(async (p, i) => await p.call<{ enqueued: number }>({ type: 'enqueue', queue: 'warmup', count: 1_000_000, inFlight: 64, maxMs: 3000, payloadBytes: 100, prefix: `${i}.` }, 60_000)))
  // Drained before the row: a backlog left queued makes every snapshot in the row large (and slow).
  const enqueued = warm.reduce((n, r) => n + r.enqueued, 0)
  await waitAcked('raftmesh', peers, 'warmup', enqueued, 120_000)
  await stopWork('warmup')
  await work('latency')
  const t0 = machineNow()
  const lat = await Promise.all(peers.map(async (p, i) => await p.call<{ ackMs: Float64Array }>({ type: 'enqueue', queue: 'latency', count: rate * seconds, inFlight: 64, maxMs: seconds * 1000 + 5000, ratePerSecond: rate, payloadBytes: 100, prefix: `${i}.` }, seconds * 1000 + 60_000)))
  await new Promise(resolve => setTimeout(resolve, 1000))
  const reports = await Promise.all(peers.map(async p => await p.call<{ latencyMs: Float64Array, starts: Array<[string, number]> }>({ type: 'report', queue: 'latency' })))
  await stopWork('latency')
  console.log(`leader ${role(leaderIdx)}, ${Math.round(machineNow() - t0)} ms, a follower is ${peers[victim].name}`)
  for (let i = 0; i < 3; i++) {
    const ack = summary(lat[i].ackMs)
    console.log(`enqueue ack p50 from ${role(i)}: ${ack.p50Ms} ms (${ack.count})`)
  }
  for (let w = 0; w < 3; w++) {
    const by: number[][] = [[], [], []]
    reports[w].starts.forEach(([k], j) => { by[Number(k.split('.')[0])].push(reports[w].latencyMs[j]) })
    console.log(`started on ${role(w)}: ` + by.map((xs, prod) => `from ${role(prod)} p50 ${summary(xs).p50Ms} (${xs.length})`).join(', '))
  }
  const all = summary(reports.flatMap(r => [...r.latencyMs]))
  console.log(`start overall: p50 ${all.p50Ms}, p99 ${all.p99Ms}, max ${all.maxMs} ms`)
} finally {
  await side.stop()
}
