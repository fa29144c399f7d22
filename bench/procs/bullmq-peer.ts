/**
 * One BullMQ process of `npm run bench -- queues`: a `Queue` and `Worker`s
 * on one redis-server (bench/redis-server.ts), as each of three server
 * processes would use BullMQ, driven for bench/queue-workload.ts (the
 * requests are in bench/procs/queue-driver.ts).
 *
 * Usage (spawned with an IPC channel, structured-clone serialization):
 *   node --import tsx bench/procs/bullmq-peer.ts '<{"port"}>'
 *
 * Jobs are added with BullMQ's defaults but `removeOnComplete: true` (a
 * queue that keeps every completed job grows without bound; raftmesh
 * forgets acked items too).
 */
import { Queue, Worker } from 'bullmq'
import { serveQueueBench, type BenchPayload } from './queue-driver.js'

const args = JSON.parse(process.argv[2] ?? '{}') as { port: number }
const connection = { host: '127.0.0.1', port: args.port }
const queues = new Map<string, Queue<BenchPayload>>()
const workers = new Set<Worker<BenchPayload>>()

function queueOf (name: string): Queue<BenchPayload> {
  let q = queues.get(name)
  if (q === undefined) queues.set(name, q = new Queue<BenchPayload>(name, { connection, defaultJobOptions: { removeOnComplete: true } }))
  return q
}

serveQueueBench({
  enqueue: async (queue, payload) => { await queueOf(queue).add('bench', payload) },
  work: (queue, o, hooks) => {
    let release: () => void = () => {}
    const held = new Promise<void>(resolve => { release = resolve })
    const worker = new Worker<BenchPayload>(queue, async job => {
      hooks.started(job.data)
      if (o.hold) await held
    }, {
      connection,
      concurrency: o.concurrency,
      lockDuration: o.visibilityMs,
      ...(o.stalledIntervalMs === undefined ? {} : { stalledInterval: o.stalledIntervalMs })
    })
    worker.on('completed', () => { hooks.acked() })
    worker.on('error', () => {})
    workers.add(worker)
    return {
      stop: async () => {
        release()
        workers.delete(worker)
        await worker.close(true)
      }
    }
  },
  status: async () => ({ waiting: await queueOf('status').getWaitingCount() }),
  close: async () => {
    await Promise.allSettled([...workers].map(async w => { await w.close(true) }))
    await Promise.allSettled([...queues.values()].map(async q => { await q.close() }))
  }
})
