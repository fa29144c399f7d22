/**
 * Runs simulation seeds and judges each: the safety invariants checked
 * during the run, liveness after faults stop, and linearizability of the
 * client history.
 */
import { simulate, type SimStats } from '../../raft/sim/simulator.js'
import { checkKvHistory } from './linearizability.js'

export interface SeedVerdict {
  readonly seed: number
  readonly violations: string[]
  readonly stats: SimStats
  readonly ops: number
}

export function runSeed (seed: number, faultTicks?: number): SeedVerdict {
  const r = simulate({ seed, faultTicks })
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
  ops: number
  committed: number
  leaderChanges: number
  crashes: number
  partitions: number
  snapshotsInstalled: number
  membershipChanges: number
  maxRecoveryTicks: number
  ms: number
}

/** Runs seeds first..first+count-1, calling onFailure for each failing seed. */
export function runSeeds (first: number, count: number, faultTicks: number | undefined, onFailure: (v: SeedVerdict) => void): SeedSummary {
  const t0 = performance.now()
  const s: SeedSummary = {
    seeds: 0, violations: 0, failedSeeds: [], ops: 0, committed: 0, leaderChanges: 0, crashes: 0,
    partitions: 0, snapshotsInstalled: 0, membershipChanges: 0, maxRecoveryTicks: 0, ms: 0
  }
  for (let seed = first; seed < first + count; seed++) {
    const v = runSeed(seed, faultTicks)
    s.seeds++
    s.ops += v.ops
    s.committed += v.stats.committed
    s.leaderChanges += v.stats.leaderChanges
    s.crashes += v.stats.crashes
    s.partitions += v.stats.partitions
    s.snapshotsInstalled += v.stats.snapshotsInstalled
    s.membershipChanges += v.stats.membershipChanges
    s.maxRecoveryTicks = Math.max(s.maxRecoveryTicks, v.stats.recoveryTicks)
    if (v.violations.length > 0) {
      s.violations += v.violations.length
      s.failedSeeds.push(seed)
      onFailure(v)
    }
  }
  s.ms = Math.round(performance.now() - t0)
  return s
}
