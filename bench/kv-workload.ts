/**
 * The key-value workload run against both raftmesh's kv-node cluster and an
 * etcd cluster in the same run: sequential PUT latency, throughput with many
 * PUTs in flight, and failover time (leader SIGKILL -> next successful PUT).
 */
import { Latency, type LatencySummary } from './latency.js'

/** A 3-member cluster the workload can drive and hurt. */
export interface KvTarget {
  readonly name: string
  /** One PUT through any member that accepts it; rejects on failure. */
  put(key: string, value: string, timeoutMs?: number): Promise<void>
  /** SIGKILLs the current leader; returns when the signal was sent. */
  killLeader(): Promise<void>
  /** Restarts the killed member and waits until the cluster is whole again. */
  restartKilled(): Promise<void>
  stop(): Promise<void>
}

export interface KvWorkloadResult {
  target: string
  sequential: LatencySummary
  concurrent: { inFlight: number, puts: number, seconds: number, perSecond: number }
  failover: { roundsMs: number[], medianMs: number }
}

export interface KvWorkloadOptions {
  readonly sequentialPuts?: number
  readonly inFlight?: number
  readonly seconds?: number
  readonly failoverRounds?: number
  /** Sequential PUTs for this long before anything is measured. Default 15. */
  readonly warmupSeconds?: number
}

/** Rounded to two decimals, for printed ratios. */
export const round2 = (x: number): number => Math.round(x * 100) / 100

/** The lower median: the middle sample, or the lower of the middle two. */
export function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]
}

/**
 * `inFlight` writers, each PUTting (100-byte values, 50 keys each) as soon
 * as its last PUT answered, for `seconds`: a fixed load, closed-loop.
 */
export async function concurrentPuts (put: KvTarget['put'], inFlight: number, seconds: number): Promise<{ puts: number, seconds: number }> {
  const value = 'v'.repeat(100)
  let puts = 0
  const start = performance.now()
  const end = start + seconds * 1000
  await Promise.all(Array.from({ length: inFlight }, async (_, w) => {
    for (let i = 0; performance.now() < end && i < 1_000_000; i++) {
      await put(`c${w}-${i % 50}`, value)
      puts++
    }
  }))
  return { puts, seconds: (performance.now() - start) / 1000 }
}

export async function runKvWorkload (t: KvTarget, opts: KvWorkloadOptions = {}): Promise<KvWorkloadResult> {
  const value = 'v'.repeat(100)
  // Steady state, not start-up: V8 takes seconds of traffic to optimise the
  // hot paths (on this machine the ratio to etcd kept falling for ~10 s of
  // sequential PUTs). Both targets get the same warm-up.
  const warmEnd = performance.now() + (opts.warmupSeconds ?? 15) * 1000
  for (let i = 0; performance.now() < warmEnd && i < 100_000; i++) await t.put(`warm${i % 100}`, value)
  const seq = new Latency()
  const seqEnd = performance.now() + 20_000
  for (let i = 0; i < (opts.sequentialPuts ?? 2000) && performance.now() < seqEnd; i++) {
    const t0 = performance.now()
    await t.put(`seq${i % 100}`, value)
    seq.since(t0)
  }
  const inFlight = opts.inFlight ?? 64
  const { puts, seconds: elapsed } = await concurrentPuts(t.put.bind(t), inFlight, opts.seconds ?? 5)
  const roundsMs: number[] = []
  for (let r = 0; r < (opts.failoverRounds ?? 5); r++) {
    await t.killLeader()
    const killedAt = performance.now()
    const deadline = killedAt + 30_000
    for (let i = 0; ; i++) {
      if (performance.now() > deadline) throw new Error(`${t.name}: no successful PUT within 30 s of killing the leader`)
      try {
        await t.put(`failover${r}-${i}`, value, 250)
        break
      } catch {
        await new Promise(resolve => setTimeout(resolve, 2))
      }
    }
    roundsMs.push(Math.round((performance.now() - killedAt) * 10) / 10)
    await t.restartKilled()
  }
  return {
    target: t.name,
    sequential: seq.summary(),
    concurrent: { inFlight, puts, seconds: Math.round(elapsed * 100) / 100, perSecond: Math.round(puts / elapsed) },
    failover: { roundsMs, medianMs: median(roundsMs) }
  }
}
