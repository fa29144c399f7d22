/**
 * The queue workload of `npm run bench -- queues`, run against three
 * raftmesh processes and against three BullMQ processes on one redis-server
 * in the same run. The producer loops and workers run inside the
 * processes (bench/procs/queue-driver.ts), timed there on the machine-wide
 * clock (machineNow of testkit/cluster-node-protocol.ts, one time line for
 * every process of this host); this side places them and turns their
 * timings into rows.
 *
 * - enqueue: `inFlight` producers in each of the three processes, for
 *   `enqueueSeconds`, no workers; enqueues acknowledged per second from the
 *   first call to the last answer. The queue is then drained by workers on
 *   all three processes (reported, as a pre-filled queue's drain rate).
 * - end-to-end: workers (`concurrency` each) on all three processes and
 *   the same producers, `endToEndCount` items per process; items acked per
 *   second from the first enqueue call to the last ack.
 * - latency: producers at `ratePerSecond` per process (open loop) for
 *   `latencySeconds`, workers on all three; from the producer's enqueue call
 *   to the handler's start, p50/p99/max; and from the same call to its
 *   answer (the enqueue is acknowledged: committed, or written by Redis).
 * - killed worker: one process's worker holds `holdItems` items (its
 *   handler never returns); the other two start workers and wait; the
 *   holder is SIGKILLed; ms until every held item has started elsewhere.
 */
import { machineNow } from '../testkit/cluster-node-protocol.js'
import { waitFor, type BenchChild } from './transport.js'
import { Latency, type LatencySummary } from './latency.js'

/** Three processes running one queue system's client, and what the kill row needs. */
export interface QueueSide {
  readonly name: string
  readonly peers: readonly BenchChild[]
  /** The settings the side ran with, for the report. */
  readonly settings: Record<string, unknown>
  /** BullMQ: the workers' stalled-job check period. */
  readonly stalledIntervalMs?: number
  /** Index of the process to SIGKILL in the kill row (raftmesh: one that does not lead). */
  victim: () => Promise<number>
  /** raftmesh: the log index applied on the first process, to count log entries per item. */
  logIndex?: () => Promise<number>
  stop: () => Promise<void>
}

export interface QueueWorkloadOptions {
  readonly warmupSeconds?: number
  readonly inFlight?: number
  readonly concurrency?: number
  readonly payloadBytes?: number
  readonly enqueueSeconds?: number
  /** Per process, a bound on the enqueue row. */
  readonly enqueueMaxCount?: number
  readonly endToEndCount?: number
  readonly ratePerSecond?: number
  readonly latencySeconds?: number
  readonly holdItems?: number
  /** raftmesh: claim visibility; BullMQ: lockDuration. */
  readonly visibilityMs?: number
  /** Wait at most this long for a queue to drain or items to be processed. */
  readonly drainTimeoutMs?: number
}

export interface QueueWorkloadResult {
  target: string
  settings: Record<string, unknown>
  enqueue: { items: number, errors: number, seconds: number, perSecond: number, drain: { seconds: number, perSecond: number } | null }
  endToEnd: { items: number, errors: number, seconds: number, perSecond: number }
  latency: LatencySummary & { ratePerSecond: number, errors: number, enqueueAck: LatencySummary }
  killedWorker: { victim: number, items: number, firstMs: number, allMs: number } | { victim: number, items: number, error: string }
  /** raftmesh: log entries applied per item in each phase (every entry of the phase, housekeeping included). */
  entriesPerItem?: { enqueue: number, drain: number, endToEnd: number, latency: number }
}

interface EnqueueResult { enqueued: number, errors: number, firstError: string | null, firstAt: number, lastAt: number, ackMs: Float64Array }
interface Progress { started: number, acked: number, lastAckAt: number }

async function call<T> (peer: BenchChild, msg: { type: string, [k: string]: unknown }, timeoutMs = 30_000): Promise<T> {
  const r = await peer.call<T & { error?: string }>(msg, timeoutMs)
  if (r.error !== undefined) throw new Error(`${peer.name}: ${r.error}`)
  return r
}

const seconds = (ms: number): number => Math.round(ms) / 1000

/** Waits until `peers` have acknowledged `n` items of `queue` between them; answers their last progress. */
export async function waitAcked (name: string, peers: readonly BenchChild[], queue: string, n: number, timeoutMs: number): Promise<Progress[]> {
  let last: Progress[] = []
  await waitFor(`${name}: ${n} items of ${queue} acked`, async () => (last = await Promise.all(peers.map(async p => await call<Progress>(p, { type: 'progress', queue })))).reduce((s, p) => s + p.acked, 0) >= n, timeoutMs, 50)
  return last
}

export async function runQueueWorkload (side: QueueSide, opts: QueueWorkloadOptions = {}): Promise<QueueWorkloadResult> {
  const o: Required<QueueWorkloadOptions> = {
    warmupSeconds: 10,
    inFlight: 64,
    concurrency: 16,
    payloadBytes: 100,
    enqueueSeconds: 5,
    enqueueMaxCount: 50_000,
    endToEndCount: 20_000,
    ratePerSecond: 100,
    latencySeconds: 10,
    holdItems: 4,
    visibilityMs: 10_000,
    drainTimeoutMs: 120_000,
    ...opts
  }
  const peers = side.peers
  const all = async <T>(f: (p: BenchChild, i: number) => Promise<T>): Promise<T[]> => await Promise.all(peers.map(f))
  const produce = async (queue: string, count: number, maxMs: number, ratePerSecond?: number): Promise<EnqueueResult[]> =>
    await all(async (p, i) => await call<EnqueueResult>(p, { type: 'enqueue', queue, count, inFlight: o.inFlight, maxMs, ratePerSecond, payloadBytes: o.payloadBytes, prefix: `${i}.` }, maxMs + 120_000))
  const work = async (queue: string, on: readonly number[], extra: { hold?: boolean, concurrency?: number } = {}): Promise<void> => {
    await Promise.all(on.map(async i => await call(peers[i], { type: 'work', queue, concurrency: extra.concurrency ?? o.concurrency, visibilityMs: o.visibilityMs, hold: extra.hold ?? false, stalledIntervalMs: side.stalledIntervalMs })))
  }
  const stopWork = async (queue: string, on: readonly number[]): Promise<void> => { await Promise.all(on.map(async i => await call(peers[i], { type: 'stop-work', queue }))) }
  const progress = async (queue: string, on: readonly number[]): Promise<Progress[]> => await Promise.all(on.map(async i => await call<Progress>(peers[i], { type: 'progress', queue })))
  const acked = async (queue: string, n: number): Promise<Progress[]> => await waitAcked(side.name, peers, queue, n, o.drainTimeoutMs)
  const every = [0, 1, 2]
  const total = (rs: EnqueueResult[]): number => rs.reduce((s, r) => s + r.enqueued, 0)
  const errs = (rs: EnqueueResult[]): number => rs.reduce((s, r) => s + r.errors, 0)
  const firstError = (rs: EnqueueResult[]): string | undefined => rs.find(r => r.firstError !== null)?.firstError ?? undefined

  // Steady state, not start-up: both sides run the end-to-end loop untimed first, so V8 has optimised the paths.
  if (o.warmupSeconds > 0) {
    await work('warmup', every)
    const w = await produce('warmup', 1_000_000, o.warmupSeconds * 1000)
    await acked('warmup', total(w))
    await stopWork('warmup', every)
  }

  const index = async (): Promise<number> => await (side.logIndex?.() ?? Promise.resolve(0))
  const per = (from: number, to: number, items: number): number => Math.round((to - from) / items * 1000) / 1000
  const i0 = await index()
  const eq = await produce('enqueue', o.enqueueMaxCount, o.enqueueSeconds * 1000)
  const i1 = await index()
  const eqItems = total(eq)
  if (eqItems === 0) throw new Error(`${side.name}: no enqueue succeeded: ${firstError(eq) ?? '?'}`)
  const eqMs = Math.max(...eq.map(r => r.lastAt)) - Math.min(...eq.map(r => r.firstAt))
  const drainStart = machineNow()
  await work('enqueue', every)
  let drain: QueueWorkloadResult['enqueue']['drain'] = null
  try {
    const d = await acked('enqueue', eqItems)
    const ms = Math.max(...d.map(p => p.lastAckAt)) - drainStart
    drain = { seconds: seconds(ms), perSecond: Math.round(eqItems / (ms / 1000)) }
  } catch {}
  await stopWork('enqueue', every)
  const i2 = await index()

  await work('e2e', every)
  const e2e = await produce('e2e', o.endToEndCount, o.drainTimeoutMs)
  const e2eItems = total(e2e)
  const e2eDone = await acked('e2e', e2eItems)
  const e2eMs = Math.max(...e2eDone.map(p => p.lastAckAt)) - Math.min(...e2e.map(r => r.firstAt))
  await stopWork('e2e', every)
  const i3 = await index()

  await work('latency', every)
  const lat = await produce('latency', Math.ceil(o.ratePerSecond * o.latencySeconds), o.latencySeconds * 1000 + 5000, o.ratePerSecond)
  await acked('latency', total(lat))
  const latency = new Latency()
  const enqueueAck = new Latency()
  for (const r of lat) for (const ms of r.ackMs) enqueueAck.record(ms)
  for (const p of peers) for (const ms of (await call<{ latencyMs: Float64Array }>(p, { type: 'report', queue: 'latency' })).latencyMs) latency.record(ms)
  await stopWork('latency', every)
  const i4 = await index()

  const killedWorker = await killRow(side, o, { work, produce: async (queue, count) => await call<EnqueueResult>(peers[0], { type: 'enqueue', queue, count, inFlight: count, maxMs: 30_000, payloadBytes: o.payloadBytes, prefix: 'held.' }, 60_000), progress })

  return {
    target: side.name,
    settings: { ...side.settings, ...o },
    enqueue: { items: eqItems, errors: errs(eq), seconds: seconds(eqMs), perSecond: Math.round(eqItems / (eqMs / 1000)), drain },
    endToEnd: { items: e2eItems, errors: errs(e2e), seconds: seconds(e2eMs), perSecond: Math.round(e2eItems / (e2eMs / 1000)) },
    latency: { ...latency.summary(), ratePerSecond: o.ratePerSecond * 3, errors: errs(lat), enqueueAck: enqueueAck.summary() },
    killedWorker,
    ...(side.logIndex === undefined ? {} : { entriesPerItem: { enqueue: per(i0, i1, eqItems), drain: per(i1, i2, eqItems), endToEnd: per(i2, i3, e2eItems), latency: per(i3, i4, total(lat)) } })
  }
}

interface KillTools {
  work: (queue: string, on: readonly number[], extra?: { hold?: boolean, concurrency?: number }) => Promise<void>
  produce: (queue: string, count: number) => Promise<EnqueueResult>
  progress: (queue: string, on: readonly number[]) => Promise<Progress[]>
}

/** Last: the victim is not restarted. */
async function killRow (side: QueueSide, o: Required<QueueWorkloadOptions>, t: KillTools): Promise<QueueWorkloadResult['killedWorker']> {
  const victim = await side.victim()
  const survivors = [0, 1, 2].filter(i => i !== victim)
  const n = o.holdItems
  try {
    await t.work('killed', [victim], { hold: true, concurrency: n })
    const e = await t.produce('killed', n)
    if (e.enqueued !== n) throw new Error(`only ${e.enqueued} of ${n} items enqueued: ${e.firstError ?? '?'}`)
    await waitFor(`${side.name}: the victim to hold ${n} items`, async () => (await t.progress('killed', [victim]))[0].started >= n, 30_000, 20)
    await t.work('killed', survivors, { concurrency: n })
    // The survivors' workers are waiting (as the lock bench's waiter gets a head start).
    await new Promise(resolve => setTimeout(resolve, 500))
    const victimProc = side.peers[victim]
    const at = machineNow()
    victimProc.proc.kill('SIGKILL')
    await waitFor(`${side.name}: the killed worker's ${n} items to start elsewhere`, async () => (await t.progress('killed', survivors)).reduce((s, p) => s + p.started, 0) >= n, 90_000, 20)
    const starts = (await Promise.all(survivors.map(async i => await call<{ starts: Array<[string, number]> }>(side.peers[i], { type: 'report', queue: 'killed' })))).flatMap(r => r.starts).map(([, s]) => s)
    return { victim, items: n, firstMs: Math.round(Math.min(...starts) - at), allMs: Math.round(Math.max(...starts) - at) }
  } catch (err) {
    return { victim, items: n, error: (err as Error).message }
  }
}
