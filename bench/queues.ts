/**
 * `npm run bench -- queues [--quick] [--runs N]`: the queue workload
 * (bench/queue-workload.ts) against three processes embedding raftmesh's
 * Cluster (expect: 3, data directories in a temp dir, the log fsynced),
 * then against BullMQ with three worker/producer processes on one
 * Debian redis-server, twice: Redis's default persistence (RDB snapshots,
 * writes acknowledged before they reach the disk) and `appendonly yes` +
 * `appendfsync always` (the fair durable row). Same machine, same run; the
 * ratio per row and issue 12's targets against the `always` row.
 *
 * The killed-worker row has comparable settings on both sides: raftmesh's
 * session TTL and claim visibility are 10 s (the library's default TTL);
 * BullMQ's lockDuration is 10 s (renewed every 5 s, its default half) and
 * its workers look for stalled jobs every second (`stalledInterval` 1 s;
 * the default is 30 s).
 *
 * QUEUES_BENCH_CPU_PROF=<dir>: each raftmesh process records a CPU profile
 * (node:inspector) from its join to its clean exit into that directory
 * (the killed one writes none). Node 20 refuses `--cpu-prof` in
 * NODE_OPTIONS.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { silentLogger } from '../gossip/logger.js'
import { loadOrCreatePeerKey } from '../gossip/peer-key.js'
import { freePort } from '../testkit/local-cluster.js'
import { median, round2 } from './kv-workload.js'
import { runQueueWorkload, type QueueSide, type QueueWorkloadOptions, type QueueWorkloadResult } from './queue-workload.js'
import { RedisServer, redisAvailable, redisVersion, type RedisPersistence } from './redis-server.js'
import { BenchChild, waitFor } from './transport.js'

function bullmqAvailable (): boolean {
  try {
    import.meta.resolve('bullmq')
    return true
  } catch {
    return false
  }
}

const procs = join(dirname(fileURLToPath(import.meta.url)), 'procs')
const SESSION_TTL_MS = 10_000
const STALLED_INTERVAL_MS = 1000

export async function startRaftmesh (): Promise<QueueSide> {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-bench-queues-'))
  const env = { RAFTMESH_BENCH_SECRET: randomBytes(32).toString('hex') }
  const peers: BenchChild[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(peers.map(async c => { await c.stop() }))
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const nodes = []
    for (let i = 1; i <= 3; i++) {
      const dataDir = join(dir, `n${i}`)
      // The key exists before the first start so that the bootstrap address can name the peer.
      const peerId = peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir, silentLogger)).toString()
      const listen = `/ip4/127.0.0.1/tcp/${await freePort()}`
      nodes.push({ nodeId: `n${i}`, dataDir, listen, addr: `${listen}/p2p/${peerId}` })
    }
    for (const n of nodes) peers.push(new BenchChild(n.nodeId, join(procs, 'queue-peer.ts'), { nodeId: n.nodeId, dataDir: n.dataDir, listen: n.listen, bootstrap: n === nodes[0] ? [] : [nodes[0].addr], sessionTtlMs: SESSION_TTL_MS }, env))
    await Promise.all(peers.map(async c => await c.ready))
    type S = { node: string, leader: string | null, session: boolean, panic: boolean, applied: number }
    const statuses = async (): Promise<S[]> => await Promise.all(peers.filter(c => !c.exited).map(async c => await c.call<S>({ type: 'status' })))
    await waitFor('raftmesh: one leader, a session on every node', async () => {
      const s = await statuses()
      return s.every(x => x.leader !== null && x.leader === s[0].leader && x.session && !x.panic)
    }, 60_000, 50)
    return {
      name: 'raftmesh (3 processes)',
      peers,
      settings: { sessionTtlMs: SESSION_TTL_MS, fsync: 'every log write (FileLogStore default)' },
      victim: async () => {
        const s = await statuses()
        return [0, 1, 2].find(i => s[i].node !== s[i].leader) as number
      },
      logIndex: async () => (await peers[0].call<S>({ type: 'status' })).applied,
      stop
    }
  } catch (err) {
    await stop()
    throw err
  }
}

export async function startBullmq (persistence: RedisPersistence): Promise<QueueSide> {
  const redis = await RedisServer.start(persistence)
  const peers = [1, 2, 3].map(i => new BenchChild(`bullmq${i}`, join(procs, 'bullmq-peer.ts'), { port: redis.port }, {}))
  const stop = async (): Promise<void> => {
    await Promise.all(peers.map(async c => { await c.stop() }))
    await redis.stop()
  }
  try {
    await Promise.all(peers.map(async c => await c.ready))
    return {
      name: `BullMQ, redis ${persistence === 'always' ? 'appendfsync always' : 'default persistence'}`,
      peers,
      settings: { redis: redisVersion(), persistence: persistence === 'always' ? 'appendonly yes, appendfsync always' : 'default (RDB snapshots, no AOF)', stalledIntervalMs: STALLED_INTERVAL_MS, removeOnComplete: true },
      stalledIntervalMs: STALLED_INTERVAL_MS,
      victim: async () => 1,
      stop
    }
  } catch (err) {
    await stop()
    throw err
  }
}

async function measure (start: () => Promise<QueueSide>, opts: QueueWorkloadOptions): Promise<QueueWorkloadResult> {
  const side = await start()
  try {
    return await runQueueWorkload(side, opts)
  } finally {
    await side.stop()
  }
}

interface Row {
  row: string
  raftmesh: number | null
  bullmqDefault: number | null
  bullmqAlways: number | null
  /** raftmesh / BullMQ default, raftmesh / BullMQ always. */
  ratioDefault: number | null
  ratioAlways: number | null
  target?: string
  met?: boolean
}

export interface QueuesRun {
  run: number
  loadAverage: number[]
  raftmesh: QueueWorkloadResult
  bullmqDefault: QueueWorkloadResult | { skipped: string }
  bullmqAlways: QueueWorkloadResult | { skipped: string }
  rows: Row[]
}

export interface QueuesBenchResult {
  bench: 'queues'
  options: QueueWorkloadOptions & { quick: boolean, runs: number }
  runs: QueuesRun[]
  /** Per target: in how many runs it was met. */
  targets: Array<{ row: string, target: string, metRuns: number, runs: number }>
}

const killed = (w: QueueWorkloadResult, pick: 'firstMs' | 'allMs'): number | null => 'error' in w.killedWorker ? null : w.killedWorker[pick]

function rows (r: QueueWorkloadResult, d: QueueWorkloadResult | null, a: QueueWorkloadResult | null): Row[] {
  const row = (name: string, pick: (w: QueueWorkloadResult) => number | null, target?: { text: string, met: (ratio: number) => boolean }): Row => {
    const x = pick(r)
    const y = d === null ? null : pick(d)
    const z = a === null ? null : pick(a)
    const ratio = (b: number | null): number | null => x === null || b === null || b === 0 ? null : round2(x / b)
    const out: Row = { row: name, raftmesh: x, bullmqDefault: y, bullmqAlways: z, ratioDefault: ratio(y), ratioAlways: ratio(z) }
    if (target !== undefined && x !== null && z !== null && z !== 0) {
      out.target = target.text
      // The exact quotient, not the printed (rounded) ratio, decides.
      out.met = target.met(x / z)
    }
    return out
  }
  return [
    row('enqueue/s (192 producers in flight)', w => w.enqueue.perSecond),
    row('drain of that queue, acked/s', w => w.enqueue.drain?.perSecond ?? null),
    row('end-to-end acked/s (workers on 3 nodes)', w => w.endToEnd.perSecond, { text: '>= 1 x always', met: x => x >= 1 }),
    row('enqueue-to-start p50 ms', w => w.latency.p50Ms, { text: '<= 1 x always', met: x => x <= 1 }),
    row('enqueue-to-start p99 ms', w => w.latency.p99Ms),
    row('enqueue-to-start max ms', w => w.latency.maxMs),
    row('enqueue acknowledged p50 ms (same rate)', w => w.latency.enqueueAck.p50Ms),
    row('enqueue acknowledged p99 ms (same rate)', w => w.latency.enqueueAck.p99Ms),
    row('killed worker: first item elsewhere ms', w => killed(w, 'firstMs')),
    row('killed worker: all items elsewhere ms', w => killed(w, 'allMs'))
  ]
}

export function parseQueuesArgs (argv: string[]): { quick: boolean, runs: number } {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean', default: false }, runs: { type: 'string', default: '1' } }, allowPositionals: true, strict: false })
  const runs = Number(values.runs)
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error('--runs must be an integer in 1..20')
  return { quick: values.quick === true, runs }
}

/** A smoke run: every row, seconds instead of minutes. */
const QUICK: QueueWorkloadOptions = { warmupSeconds: 1, enqueueSeconds: 1, enqueueMaxCount: 5000, endToEndCount: 1000, latencySeconds: 2, drainTimeoutMs: 60_000 }

export async function runQueuesBench (argv: string[] = []): Promise<QueuesBenchResult> {
  const { quick, runs } = parseQueuesArgs(argv)
  const opts = quick ? QUICK : {}
  const out: QueuesRun[] = []
  const skipped = !redisAvailable()
    ? { skipped: 'redis-server not installed (apt-get install -y redis-server)' }
    : !bullmqAvailable() ? { skipped: 'the bullmq package is not installed (npm install)' } : null
  for (let run = 1; run <= runs; run++) {
    const loadAverage = loadavg().map(x => round2(x))
    const raftmesh = await measure(startRaftmesh, opts)
    const bullmqDefault = skipped ?? await measure(async () => await startBullmq('default'), opts)
    const bullmqAlways = skipped ?? await measure(async () => await startBullmq('always'), opts)
    const r = (w: QueueWorkloadResult | { skipped: string }): QueueWorkloadResult | null => 'skipped' in w ? null : w
    out.push({ run, loadAverage, raftmesh, bullmqDefault, bullmqAlways, rows: rows(raftmesh, r(bullmqDefault), r(bullmqAlways)) })
    // Each run's table as soon as it is measured: a long series that fails later still leaves its figures.
    process.stderr.write(`queues: run ${run} of ${runs} done\n${runTable(out[out.length - 1])}\n`)
  }
  const targets = out[0].rows.filter(x => x.target !== undefined).map(x => ({
    row: x.row,
    target: x.target as string,
    metRuns: out.filter(run => run.rows.find(y => y.row === x.row)?.met === true).length,
    runs: out.length
  }))
  return { bench: 'queues', options: { ...opts, quick, runs }, runs: out, targets }
}

const cell = (x: number | null | undefined, w = 11): string => (x === null || x === undefined ? '-' : String(x)).padStart(w)

function runTable (run: QueuesRun): string {
  const lines: string[] = []
  lines.push(`run ${run.run} (load average before it ${run.loadAverage.join(' ')})`)
  lines.push(`${'row'.padEnd(42)} ${'raftmesh'.padStart(11)} ${'bull dflt'.padStart(11)} ${'bull always'.padStart(11)} ${'x dflt'.padStart(7)} ${'x always'.padStart(8)}  target`)
  for (const x of run.rows) lines.push(`${x.row.padEnd(42)} ${cell(x.raftmesh)} ${cell(x.bullmqDefault)} ${cell(x.bullmqAlways)} ${cell(x.ratioDefault, 7)} ${cell(x.ratioAlways, 8)}  ${x.target === undefined ? '' : `${x.target} ${x.met === true ? 'met' : 'NOT MET'}`}`)
  const e = run.raftmesh.entriesPerItem
  if (e !== undefined) lines.push(`raftmesh log entries per item: enqueue ${e.enqueue}, drain ${e.drain}, end-to-end ${e.endToEnd}, latency row ${e.latency}`)
  for (const w of [run.raftmesh, run.bullmqDefault, run.bullmqAlways]) {
    if ('skipped' in w) lines.push(`skipped: ${w.skipped}`)
    else {
      if ('error' in w.killedWorker) lines.push(`${w.target}: killed-worker row failed: ${w.killedWorker.error}`)
      const errors = w.enqueue.errors + w.endToEnd.errors + w.latency.errors
      if (errors > 0) lines.push(`${w.target}: ${errors} enqueues failed`)
    }
  }
  return lines.join('\n')
}

export function queuesTable (r: QueuesBenchResult): string {
  const lines = r.runs.map(runTable)
  if (r.runs.length > 1) {
    lines.push(`medians over ${r.runs.length} runs`)
    for (const [k, x] of r.runs[0].rows.entries()) {
      const med = (pick: (y: Row) => number | null): number | null => {
        const xs = r.runs.map(run => pick(run.rows[k])).filter((v): v is number => v !== null)
        return xs.length === 0 ? null : median(xs)
      }
      lines.push(`${x.row.padEnd(42)} ${cell(med(y => y.raftmesh))} ${cell(med(y => y.bullmqDefault))} ${cell(med(y => y.bullmqAlways))} ${cell(med(y => y.ratioDefault), 7)} ${cell(med(y => y.ratioAlways), 8)}`)
    }
  }
  for (const t of r.targets) lines.push(`target ${t.row} ${t.target}: met in ${t.metRuns} of ${t.runs} run(s)`)
  return lines.join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await runQueuesBench(process.argv.slice(2))
  console.log(JSON.stringify(r, null, 2))
  console.error(queuesTable(r))
}
