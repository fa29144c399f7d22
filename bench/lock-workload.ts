/**
 * The lock workload of `npm run bench -- locks`, run against raftmesh's
 * three embedding processes and against etcd's three client processes in
 * the same run. The loops run inside the processes (timed there, on the
 * machine-wide clock of testkit/cluster-node-protocol.ts); this side only
 * places them and turns their timings into rows.
 */
import * as hdr from 'hdr-histogram-js'
import type { CycleTimes } from '../testkit/cluster-processes.js'
import { median } from './kv-workload.js'

export type { CycleTimes }

export interface CycleRequest {
  readonly key: string
  readonly count: number
  readonly maxMs: number
  /** Other loops use the same key at the same time (the contended row). */
  readonly shared: boolean
}

/** Three processes that take locks, and the cluster under them that can be hurt. */
export interface LockSide {
  readonly name: string
  /** Index (0-2) of the process whose node (or etcd member) leads now. */
  leader(): Promise<number>
  /** acquire → release in a loop, in process `i`; waits in the lock's queue when contended. */
  cycle(i: number, r: CycleRequest): Promise<CycleTimes>
  /** Kills (SIGKILL) or pauses (SIGSTOP) the leader's node; ms until a surviving process next holds a fresh lock. Leaves the cluster whole again. */
  failover(signal: 'SIGKILL' | 'SIGSTOP', round: number): Promise<number>
  /**
   * SIGKILLs a process that holds a lock another process waits for; ms
   * until the waiter holds it, and why the holder had lost the lock before
   * the kill if it had (then the figure is not a failover). Leaves the
   * cluster whole again.
   */
  holderKilled(): Promise<{ ms: number, lostBeforeKill: string | null }>
  /** raftmesh only: SIGSTOPs every node but the leader; ms until the leader reports quorum-loss panic. */
  panic?(): Promise<number>
  stop(): Promise<void>
}

export interface LockWorkloadOptions {
  readonly warmupSeconds?: number
  readonly sequentialCount?: number
  readonly sequentialSeconds?: number
  readonly holders?: number
  readonly contenders?: number
  readonly throughputSeconds?: number
  readonly failoverRounds?: number
}

export interface SequentialRow { from: 'leader' | 'follower', process: number, count: number, p50Ms: number, p99Ms: number, perSecond: number }

export interface LockWorkloadResult {
  target: string
  sequentialLeader: SequentialRow
  sequentialFollower: SequentialRow
  holders: { holders: number, grants: number, seconds: number, perSecond: number }
  contended: {
    contenders: number
    grants: number
    seconds: number
    perSecond: number
    waitP50Ms: number
    waitP99Ms: number
    /** Grants per contender, fewest and most. */
    minPerContender: number
    maxPerContender: number
    /**
     * The most grants to others between one contender's request and its own
     * grant: at most contenders - 1 when the queue is FIFO (a request in
     * flight to the leader may see one more grant before it is queued).
     */
    maxOvertaken: number
  }
  failoverKill: { roundsMs: number[], medianMs: number }
  failoverPause: { roundsMs: number[], medianMs: number }
  holderKilledMs: number
  holderLostBeforeKill: string | null
  panicMs: number | null
}

/** p50 and p99 of durations in ms, through an HDR histogram in µs as the other benches record. */
function percentiles (ms: number[]): { p50Ms: number, p99Ms: number } {
  const h = hdr.build({ useWebAssembly: false, lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  for (const x of ms) h.recordValue(Math.max(1, Math.round(x * 1000)))
  return { p50Ms: Math.round(h.getValueAtPercentile(50)) / 1000, p99Ms: Math.round(h.getValueAtPercentile(99)) / 1000 }
}

const oneDecimal = (x: number): number => Math.round(x * 10) / 10

async function sequential (side: LockSide, from: 'leader' | 'follower', o: Required<LockWorkloadOptions>): Promise<SequentialRow> {
  const leader = await side.leader()
  const i = from === 'leader' ? leader : (leader + 1) % 3
  const t = await side.cycle(i, { key: `seq-${from}`, count: o.sequentialCount, maxMs: o.sequentialSeconds * 1000, shared: false })
  const cycles = t.releasedAt.map((r, k) => r - t.requestedAt[k])
  const busyMs = cycles.reduce((a, b) => a + b, 0)
  return { from, process: i, count: cycles.length, ...percentiles(cycles), perSecond: Math.round(cycles.length / (busyMs / 1000)) }
}

/** `n` loops at once for `seconds`, spread over the three processes; the elapsed time is from the first request to the last release. */
async function concurrent (side: LockSide, n: number, key: (k: number) => string, seconds: number): Promise<CycleTimes[]> {
  const shared = new Set(Array.from({ length: n }, (_, k) => key(k))).size < n
  return await Promise.all(Array.from({ length: n }, async (_, k) => await side.cycle(k % 3, { key: key(k), count: 1_000_000, maxMs: seconds * 1000, shared })))
}

function span (runs: CycleTimes[]): number {
  const first = Math.min(...runs.map(r => r.requestedAt[0] ?? Infinity))
  const last = Math.max(...runs.map(r => r.releasedAt[r.releasedAt.length - 1] ?? -Infinity))
  return (last - first) / 1000
}

function contendedRow (runs: CycleTimes[]): LockWorkloadResult['contended'] {
  const grants = runs.reduce((a, r) => a + r.grantedAt.length, 0)
  const seconds = span(runs)
  const waits = runs.flatMap(r => r.grantedAt.map((g, k) => g - r.requestedAt[k]))
  const counts = runs.map(r => r.grantedAt.length)
  let maxOvertaken = 0
  for (const [c, r] of runs.entries()) {
    const others = runs.filter((_, k) => k !== c).flatMap(o => o.grantedAt).sort((a, b) => a - b)
    for (const [k, g] of r.grantedAt.entries()) {
      const req = r.requestedAt[k]
      const overtaken = others.filter(x => x > req && x < g).length
      if (overtaken > maxOvertaken) maxOvertaken = overtaken
    }
  }
  const { p50Ms, p99Ms } = percentiles(waits)
  return { contenders: runs.length, grants, seconds: Math.round(seconds * 100) / 100, perSecond: Math.round(grants / seconds), waitP50Ms: p50Ms, waitP99Ms: p99Ms, minPerContender: Math.min(...counts), maxPerContender: Math.max(...counts), maxOvertaken }
}

export async function runLockWorkload (side: LockSide, opts: LockWorkloadOptions = {}): Promise<LockWorkloadResult> {
  const o: Required<LockWorkloadOptions> = { warmupSeconds: 10, sequentialCount: 1000, sequentialSeconds: 15, holders: 16, contenders: 8, throughputSeconds: 5, failoverRounds: 5, ...opts }
  // Steady state, not start-up: every process takes locks until V8 has optimised the paths (as in the kv bench).
  await concurrent(side, 3, k => `warm-${k}`, o.warmupSeconds)
  const sequentialLeader = await sequential(side, 'leader', o)
  const sequentialFollower = await sequential(side, 'follower', o)
  const h = await concurrent(side, o.holders, k => `holder-${k}`, o.throughputSeconds)
  const hGrants = h.reduce((a, r) => a + r.grantedAt.length, 0)
  const hSeconds = span(h)
  const contended = contendedRow(await concurrent(side, o.contenders, () => 'contended', o.throughputSeconds))
  const kill: number[] = []
  for (let r = 0; r < o.failoverRounds; r++) kill.push(oneDecimal(await side.failover('SIGKILL', r)))
  const pause: number[] = []
  for (let r = 0; r < o.failoverRounds; r++) pause.push(oneDecimal(await side.failover('SIGSTOP', r)))
  const holderKilled = await side.holderKilled()
  const panicMs = side.panic === undefined ? null : oneDecimal(await side.panic())
  return {
    target: side.name,
    sequentialLeader,
    sequentialFollower,
    holders: { holders: o.holders, grants: hGrants, seconds: Math.round(hSeconds * 100) / 100, perSecond: Math.round(hGrants / hSeconds) },
    contended,
    failoverKill: { roundsMs: kill, medianMs: median(kill) },
    failoverPause: { roundsMs: pause, medianMs: median(pause) },
    holderKilledMs: oneDecimal(holderKilled.ms),
    holderLostBeforeKill: holderKilled.lostBeforeKill,
    panicMs
  }
}
