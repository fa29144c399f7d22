/**
 * Runs simulation seeds and judges each: the safety invariants checked
 * during the run, liveness after faults stop, and linearizability of the
 * client history.
 */
import { checkKvHistory } from './linearizability.js'
import { simulate, type SimOptions, type SimStats } from './simulator.js'

/** Seeds npm test runs (1..TEST_SEEDS): enough to catch every planted bug in test/mutants/ (npm run mutants). */
export const TEST_SEEDS = 300

export interface SeedVerdict {
  readonly seed: number
  readonly violations: string[]
  readonly stats: SimStats
  readonly ops: number
}

/** Options every seed of a run shares. */
export type RunOptions = Omit<SimOptions, 'seed' | 'onEvent'> & {
  /** Stop at the first failing seed. */
  readonly failFast?: boolean
}

export async function runSeed (seed: number, opts: RunOptions = {}): Promise<SeedVerdict> {
  const r = await simulate({ faultMs: opts.faultMs, maxEvents: opts.maxEvents, maxWallMs: opts.maxWallMs, seed })
  const violations = [...r.violations]
  if (violations.length === 0) {
    const lin = checkKvHistory(r.history)
    if (!lin.ok) {
      violations.push(lin.timedOut === true
        ? `linearizability check ran out of budget on key ${lin.key ?? '?'}`
        : `not linearizable on key ${lin.key ?? '?'}: ${lin.explanation ?? ''}`)
    }
  }
  return { seed, violations, stats: r.stats, ops: r.history.length }
}

export interface SeedSummary {
  seeds: number
  violations: number
  failedSeeds: number[]
  events: number
  crashes: number
  crashesAtPersistPoints: number
  tornWrites: number
  configChanges: number
  configChangesRefused: number
  snapshotsInstalled: number
  eventCapHits: number
  leaderChanges: number
  transfers: number
  partitions: number
  ops: number
  maxRecoveryMs: number
  /** Seeds in which some leader quiesced its group, and the marked heartbeats sent in all. */
  quiescedSeeds: number
  quiesceHeartbeats: number
  ms: number
}

/** The command that replays one seed. */
export function replayCommand (seed: number): string {
  return `npm run sim -- --seed ${seed}`
}

/** Runs seeds first..first+count-1, calling onFailure for each failing seed and onProgress after each. */
export async function runSeeds (first: number, count: number, opts: RunOptions, onFailure: (v: SeedVerdict) => void, onProgress?: (done: number) => void): Promise<SeedSummary> {
  const t0 = performance.now()
  const s: SeedSummary = {
    seeds: 0, violations: 0, failedSeeds: [], events: 0, crashes: 0, crashesAtPersistPoints: 0, tornWrites: 0, configChanges: 0,
    configChangesRefused: 0, snapshotsInstalled: 0, eventCapHits: 0, leaderChanges: 0, transfers: 0, partitions: 0, ops: 0, maxRecoveryMs: 0, quiescedSeeds: 0, quiesceHeartbeats: 0, ms: 0
  }
  for (let seed = first; seed < first + count; seed++) {
    const v = await runSeed(seed, opts)
    const st = v.stats
    s.seeds++
    s.ops += v.ops
    s.events += st.events
    s.crashes += st.crashes
    s.crashesAtPersistPoints += st.crashesAtPersistPoints
    s.tornWrites += st.tornWrites
    s.configChanges += st.configChanges
    s.configChangesRefused += st.configChangesRefused
    s.snapshotsInstalled += st.snapshotsInstalled
    s.eventCapHits += st.eventCapHit ? 1 : 0
    s.leaderChanges += st.leaderChanges
    s.transfers += st.transfers
    s.partitions += st.partitions
    s.maxRecoveryMs = Math.max(s.maxRecoveryMs, st.recoveryMs)
    s.quiescedSeeds += st.quiesceHeartbeats > 0 ? 1 : 0
    s.quiesceHeartbeats += st.quiesceHeartbeats
    if (v.violations.length > 0) {
      s.violations += v.violations.length
      s.failedSeeds.push(seed)
      onFailure(v)
      if (opts.failFast === true) break
    }
    onProgress?.(s.seeds)
  }
  s.ms = Math.round(performance.now() - t0)
  return s
}
