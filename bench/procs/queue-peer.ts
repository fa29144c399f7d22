/**
 * One raftmesh process of `npm run bench -- queues`: embeds one Cluster as
 * a server would (expect: 3, its own data directory, the log fsynced) and
 * drives `cluster.queue()` for bench/queue-workload.ts (the requests are in
 * bench/procs/queue-driver.ts).
 *
 * Usage (spawned with an IPC channel, structured-clone serialization):
 *   node --import tsx bench/procs/queue-peer.ts '<{"nodeId","dataDir","listen","bootstrap","sessionTtlMs"}>'
 * The cluster secret comes in RAFTMESH_BENCH_SECRET. With
 * QUEUES_BENCH_CPU_PROF=<dir>, a CPU profile from the join to a clean
 * stop is written there as <nodeId>-<pid>.cpuprofile.
 */
import { join } from 'node:path'
import { startBenchCluster, type BenchNodeArgs } from './bench-cluster.js'
import { CpuProfileWindow } from './cpu-profile-window.js'
import { serveQueueBench, type BenchPayload } from './queue-driver.js'

interface PeerArgs extends BenchNodeArgs { sessionTtlMs: number }

const args = JSON.parse(process.argv[2] ?? '{}') as PeerArgs
const cluster = await startBenchCluster('bench-queues', args, { sessionTtlMs: args.sessionTtlMs })

const profDir = process.env.QUEUES_BENCH_CPU_PROF
const profiler = profDir === undefined ? null : new CpuProfileWindow()
await profiler?.start()

serveQueueBench({
  enqueue: async (queue, payload) => { await cluster.queue<BenchPayload>(queue).enqueue(payload) },
  work: (queue, o, hooks) => {
    const processor = cluster.queue<BenchPayload>(queue).process(async job => {
      hooks.started(job.payload)
      if (o.hold) await new Promise(resolve => { job.signal.addEventListener('abort', resolve, { once: true }) })
    }, { concurrency: o.concurrency, visibilityMs: o.visibilityMs })
    // As the BullMQ peer counts its worker's 'completed' events.
    processor.on('completed', () => { hooks.acked() })
    return { stop: async () => { await processor.stop() } }
  },
  status: async () => {
    const s = cluster.status()
    return { node: cluster.id, leader: s.raft.leader, session: s.session.id !== null, panic: s.panic !== null, applied: s.raft.appliedIndex }
  },
  close: async () => {
    if (profiler !== null && profDir !== undefined) await profiler.stop(join(profDir, `${args.nodeId}-${process.pid}.cpuprofile`))
    await cluster.stop()
  }
})
