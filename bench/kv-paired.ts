/**
 * Sequential PUT latency of two clusters measured in alternating blocks while
 * both are up. On this VM one target's p50 moves between ~1.8 and ~2.6 ms
 * over a few thousand PUTs (the state of the machine, not of the target), so
 * two targets measured one after the other can differ by that much for no
 * reason of their own. Alternating blocks of a few hundred PUTs, the first
 * target of each round taking turns, puts both through the same states; the
 * per-round ratio shows how much of the difference is real.
 */
import { Latency, type LatencySummary } from './latency.js'
import type { KvTarget } from './kv-workload.js'

export interface PairedOptions {
  readonly rounds?: number
  readonly putsPerBlock?: number
  /** Sequential PUTs, alternating between the targets, before measuring. Default 15 s per target. */
  readonly warmupSeconds?: number
}

export interface PairedResult {
  rounds: number
  putsPerBlock: number
  a: { target: string, sequential: LatencySummary }
  b: { target: string, sequential: LatencySummary }
  /** a's p50 over b's, per round. */
  roundRatios: number[]
  /** Median of roundRatios. */
  medianRatio: number
}

function p50 (xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y)
  return s[Math.floor((s.length - 1) / 2)]
}

const r2 = (x: number): number => Math.round(x * 100) / 100

export async function runPairedSequential (a: KvTarget, b: KvTarget, opts: PairedOptions = {}): Promise<PairedResult> {
  const rounds = opts.rounds ?? 10
  const perBlock = opts.putsPerBlock ?? 300
  const value = 'v'.repeat(100)
  const warmEnd = performance.now() + 2 * (opts.warmupSeconds ?? 15) * 1000
  for (let i = 0; performance.now() < warmEnd && i < 100_000; i++) {
    await a.put(`warm${i % 100}`, value)
    await b.put(`warm${i % 100}`, value)
  }
  const all = new Map([[a, new Latency()], [b, new Latency()]])
  const roundRatios: number[] = []
  for (let r = 0; r < rounds; r++) {
    const block = new Map<KvTarget, number[]>()
    for (const t of r % 2 === 0 ? [a, b] : [b, a]) {
      const ms: number[] = []
      for (let i = 0; i < perBlock; i++) {
        const t0 = performance.now()
        await t.put(`seq${i % 100}`, value)
        ms.push(performance.now() - t0)
        all.get(t)?.since(t0)
      }
      block.set(t, ms)
    }
    roundRatios.push(r2(p50(block.get(a) ?? []) / p50(block.get(b) ?? [])))
  }
  return {
    rounds,
    putsPerBlock: perBlock,
    a: { target: a.name, sequential: (all.get(a) as Latency).summary() },
    b: { target: b.name, sequential: (all.get(b) as Latency).summary() },
    roundRatios,
    medianRatio: p50(roundRatios)
  }
}
