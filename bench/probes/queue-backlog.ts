/**
 * Three processes embedding Cluster (as `npm run bench -- queues` starts
 * them) each enqueue RATE items a second for SECS seconds, open loop, no
 * workers, so the queue's backlog and the coordination state grow all
 * along. Prints the enqueue acknowledgements' p50/p99/p99.9/max and, per
 * producer, the longest one in each tenth of the run (where the snapshots'
 * stalls show).
 *
 *   RATE=1500 SECS=40 node --import tsx bench/probes/queue-backlog.ts
 */
import { startRaftmesh } from '../queues.js'

interface Produced { enqueued: number, errors: number, ackMs: Float64Array }

const RATE = Number(process.env.RATE ?? 1500)
const SECS = Number(process.env.SECS ?? 40)
const side = await startRaftmesh()
try {
  const produced = await Promise.all(side.peers.map(async (p, i) => await p.call<Produced>({ type: 'enqueue', queue: 'backlog', count: RATE * SECS, inFlight: 512, maxMs: SECS * 1000 + 5000, ratePerSecond: RATE, payloadBytes: 100, prefix: `${i}.` }, SECS * 1000 + 180_000)))
  const all: number[] = []
  const tenths: string[] = []
  for (const r of produced) {
    const acks = Array.from(r.ackMs)
    all.push(...acks)
    const size = Math.floor(acks.length / 10)
    tenths.push(Array.from({ length: 10 }, (_, k) => Math.max(...acks.slice(k * size, (k + 1) * size)).toFixed(0)).join(' '))
  }
  all.sort((a, b) => a - b)
  const q = (p: number): string => all[Math.min(all.length - 1, Math.floor(p * all.length))].toFixed(2)
  console.log(JSON.stringify({ enqueued: produced.reduce((n, r) => n + r.enqueued, 0), errors: produced.reduce((n, r) => n + r.errors, 0), p50: q(0.5), p99: q(0.99), p999: q(0.999), max: q(1) }))
  console.log(`longest acknowledgement (ms) in each tenth of the run, per producer:\n${tenths.join('\n')}`)
} finally {
  await side.stop()
}
