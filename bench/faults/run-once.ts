/**
 * One fault run: a fresh cluster of processes (each embedding one Cluster,
 * testkit/cluster-node.ts), a mixed workload on every node (a lock, a
 * durable queue with producers and workers, a scheduled task, a replicated
 * cache and an invalidation cache over a file "database", events), the
 * seeded nemesis, then a heal and a drain, and the checkers on the recorded
 * history.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { checkInvalidationCache, checkReplicatedCache, type FinalCache } from '../../testkit/checks/cache-history.js'
import { checkEventHistory } from '../../testkit/checks/event-history.js'
import { checkLockHistory } from '../../testkit/checks/lock-history.js'
import { checkQueueHistory } from '../../testkit/checks/queue-history.js'
import { checkTicks, tickRuns } from '../../testkit/checks/tick-history.js'
import { ClusterProcesses, machineNow, peerIdOf, type CacheWorkload, type HistoryEntry, type QueueState } from '../../testkit/cluster-processes.js'
import { clockRatesFor, planFaults, runNemesis, type FaultWindow } from './nemesis.js'
import { failovers, latencies, rejoins, throughput, type Failover, type LatencyPoint, type Rejoin, type ThroughputPoint } from './series.js'

export interface RunOptions {
  readonly seed: number
  readonly nodes: number
  /** Faults are planned to fill this long. */
  readonly durationMs: number
  /** Where a failing run's history and logs are kept. */
  readonly outDir: string
  /** Keep the history and logs of a run that passed too. */
  readonly keep?: boolean
  /** loopback: partitions by the transport's fault layer; netns: by the network (see ClusterProcesses). */
  readonly network: 'loopback' | 'netns'
  /** Each node's clocks run up to this fraction fast or slow (see clockRatesFor); 0: real time. */
  readonly clockSkew: number
}

export interface RunResult {
  readonly seed: number
  /** Absent in runs from before the option: those were all on loopback. */
  readonly network?: 'loopback' | 'netns'
  /** Absent in runs from before the option: real time. */
  readonly clockSkew?: number
  /** Each node's clock rate (1: real time). */
  readonly clockRates?: number[]
  readonly ok: boolean
  /** Safety and liveness violations, by checker. */
  readonly violations: Record<string, string[]>
  readonly faults: FaultWindow[]
  readonly failovers: Failover[]
  /** Absent in runs from before the measure. */
  readonly rejoins?: Rejoin[]
  readonly ops: Record<string, number>
  readonly eventsReportedLost: number
  readonly wallMs: number
  readonly latency: LatencyPoint[]
  readonly throughput: ThroughputPoint[]
  /** Set when the run failed: its history and logs. */
  readonly kept?: string
}

const TTL_MS = 2000
const PANIC_AFTER_MS = 1000
const LOCK = 'faults-lock'
const QUEUE = 'faults-queue'
const MAX_ATTEMPTS = 50
const TASK = 'faults-tick'
const CACHE = 'faults-cache'
const INVALIDATION = 'faults-entities'
/**
 * Many more keys than writes after the heal (3 nodes at 10 writes/s for a few seconds): most keys keep a value written
 * during a fault, so only anti-entropy can make the copies agree.
 */
const CACHE_KEYS = 1000
const TOPIC = 'faults'
const DRAIN_MS = 40_000
/** After the drain: caches converge (anti-entropy every second) and the last events arrive or are found lost (head checks every 2 s). */
const CONVERGE_MS = 15_000
/** On top of the faults' duration: start, settle, drain and checks, on a loaded machine. */
const RUN_SLACK_MS = 180_000

export async function runOnce (o: RunOptions): Promise<RunResult> {
  const launched = machineNow()
  const clockRates = clockRatesFor(o.seed, o.nodes, o.clockSkew)
  const c = await ClusterProcesses.start({ nodes: o.nodes, sessionTtlMs: TTL_MS, panicAfterMs: PANIC_AFTER_MS, onPanic: 'report', logLevel: 'warn', network: o.network, clockRates })
  // The run's time line starts once the cluster has formed.
  const started = machineNow()
  const nodeIds = c.nodes.map(n => n.id)
  const dbDir = await mkdtemp(join(tmpdir(), 'raftmesh-faults-db-'))
  const caches: CacheWorkload = {
    replicated: CACHE,
    invalidation: INVALIDATION,
    keys: CACHE_KEYS,
    ownKeys: 3,
    nodes: nodeIds,
    dbDir,
    gapMs: 100,
    deleteEvery: 7,
    readers: 2,
    loadMs: 5,
    antiEntropyIntervalMs: 1000
  }
  let producers = 0
  const processor = { queue: QUEUE, maxAttempts: MAX_ATTEMPTS, concurrency: 4, visibilityMs: 3000, workMs: 100 }
  const work = async (i: number): Promise<void> => {
    await c.startEventWorkload(i, { topic: TOPIC, gapMs: 100, orderedEvery: 10 })
    await c.startWorkload(i, { lock: LOCK, holdMs: 50, gapMs: 20, acquireTimeoutMs: 10_000 })
    await c.startSchedule(i, { task: TASK, everyMs: 500, workMs: 50 })
    await c.startProcessor(i, processor)
    // Ids name the node and the producer, so a restarted node never sends an id again.
    await c.startProducer(i, { queue: QUEUE, idPrefix: `${nodeIds[i]}.p${++producers}`, count: 100_000, inFlight: 1, gapMs: 50, maxAttempts: MAX_ATTEMPTS })
    await c.startCacheWorkload(i, caches)
  }
  const windows: FaultWindow[] = []
  let finalQueue: QueueState | null = null
  let finalCaches: FinalCache[] = []
  const violations: Record<string, string[]> = {}
  const scenario = async (): Promise<void> => {
    for (let i = 0; i < o.nodes; i++) await work(i)
    await sleep(2000)
    await runNemesis(c, planFaults(o.seed, { durationMs: o.durationMs, sessionTtlMs: TTL_MS }), o.seed, work, windows)

    // Healed (the nemesis lifts each fault): a lapsed lock or claim comes back within the TTL, then the workload stops.
    await sleep(TTL_MS + 3000)
    await Promise.all(c.nodes.map(async n => { await c.stopWorkloads(n.index) }))
    // The workers alone drain the queue.
    await Promise.all(c.nodes.map(async n => { await c.startProcessor(n.index, processor) }))
    const until = machineNow() + DRAIN_MS
    for (;;) {
      finalQueue = await c.queueState(await c.leader(), QUEUE)
      if ((finalQueue.stats.depth === 0 && finalQueue.stats.inFlight === 0) || machineNow() > until) break
      await sleep(250)
    }
    await Promise.all(c.nodes.map(async n => { await c.stopWorkloads(n.index) }))
    finalQueue = await c.queueState(await c.leader(), QUEUE)
    const converged = machineNow() + CONVERGE_MS
    const same = (fs: FinalCache[]): boolean => fs.every(f => JSON.stringify(f.entries) === JSON.stringify(fs[0].entries))
    for (;;) {
      finalCaches = await Promise.all(c.nodes.map(async n => ({ node: n.index, ...await c.cacheContents(n.index, CACHE) })))
      if ((same(finalCaches) && checkEventHistory(c.history, { minReceived: 10 }).length === 0) || machineNow() > converged) break
      await sleep(250)
    }
  }
  // Every wait in the scenario is bounded except a restarted node's join: bound the whole run.
  const limitMs = o.durationMs + RUN_SLACK_MS
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([scenario(), new Promise((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`the run did not finish within ${limitMs} ms`)) }, limitMs) })])
  } catch (err) {
    violations.harness = [`the run could not finish: ${(err as Error).message}`]
  } finally {
    clearTimeout(timer)
  }

  const h = c.history
  if (finalQueue !== null) {
    const maxFault = Math.max(0, ...windows.map(w => w.to - w.from))
    violations.locks = checkLockHistory(h, { lock: LOCK, sessionTtlMs: TTL_MS, regrantSlackMs: 10_000, minGrants: 10 })
    violations.queue = checkQueueHistory(h, finalQueue, { queue: QUEUE, maxAttempts: MAX_ATTEMPTS, minAcked: 10 })
    // A tick may wait out a paused or cut-off runner's session (the TTL, counted from a new leader's election).
    violations.ticks = checkTicks(tickRuns(h, TASK), { maxGapMs: maxFault + 4 * TTL_MS + 5000 })
    violations.caches = checkReplicatedCache(h, finalCaches, { cache: CACHE, minWrites: 10, minRemoteChanges: 10 })
    violations.invalidation = checkInvalidationCache(h, { cache: INVALIDATION, minReads: 10, minBoundReads: 1 })
  }
  violations.events = checkEventHistory(h, { minReceived: 10 })
  for (const k of Object.keys(violations)) if (violations[k].length === 0) delete violations[k]
  const ok = Object.keys(violations).length === 0

  const count = (type: HistoryEntry['type']): number => h.filter(e => e.type === type).length
  const result: RunResult = {
    seed: o.seed,
    network: o.network,
    clockSkew: o.clockSkew,
    clockRates,
    ok,
    violations,
    faults: windows.map(w => ({ ...w, from: w.from - started, to: w.to - started })),
    failovers: failovers(h, windows, nodeIds),
    rejoins: rejoins(h, windows, nodeIds, c.nodes.map(n => peerIdOf(n.addr))),
    ops: {
      lockGrants: count('granted'),
      enqueued: count('enqueued'),
      acked: count('job-acked'),
      taskRuns: count('task-run'),
      cacheWrites: count('cache-write'),
      cacheReads: count('cache-read') + count('inv-read'),
      eventsPublished: count('event-published'),
      eventsDelivered: count('event-received'),
      errors: count('error')
    },
    eventsReportedLost: h.reduce((n, e) => e.type === 'event-gap' ? n + e.to - e.from + 1 : n, 0),
    wallMs: machineNow() - launched,
    latency: latencies(h, started),
    throughput: throughput(h, started)
  }
  let kept: string | undefined
  if (!ok || o.keep === true) {
    kept = join(o.outDir, `${ok ? 'passed' : 'failed'}-seed-${o.seed}`)
    await mkdir(kept, { recursive: true })
    const json = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => typeof x === 'bigint' ? String(x) : x)
    await writeFile(join(kept, 'history.jsonl'), [...h].sort((a, b) => a.at - b.at).map(e => json({ ...e, at: e.at - started })).join('\n') + '\n')
    await writeFile(join(kept, 'logs.txt'), c.nodes.map(n => `== ${n.id} (last stderr lines)\n${n.stderr.join('\n')}`).join('\n\n') + '\n')
    await writeFile(join(kept, 'final.json'), json({ finalQueue, finalCaches, violations }))
  }
  await c.stop()
  await rm(dbDir, { recursive: true, force: true })
  return kept === undefined ? result : { ...result, kept }
}
