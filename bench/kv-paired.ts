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
import { median, round2, type KvTarget } from './kv-workload.js'

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
  /** a's p50 over b's, over all rounds. */
  p50Ratio: number
  /** a's p50 over b's, per round. */
  roundRatios: number[]
  /** Median of roundRatios. */
  medianRatio: number
}

export async function runPairedSequential (a: KvTarget, b: KvTarget, opts: PairedOptions = {}): Promise<PairedResult> {
  const rounds = opts.rounds ?? 10
  const perBlock = opts.putsPerBlock ?? 300
  const value = 'v'.repeat(100)
  const warmEnd = performance.now() + 2 * (opts.warmupSeconds ?? 15) * 1000
  for (let i = 0; performance.now() < warmEnd && i < 100_000; i++) {
    await a.put(`warm${i % 100}`, value)
    await b.put(`warm${i % 100}`, value)
  }
  const targets = [a, b]
  const all = [new Latency(), new Latency()]
  const roundRatios: number[] = []
  for (let r = 0; r < rounds; r++) {
    const block: number[][] = [[], []]
    for (const k of r % 2 === 0 ? [0, 1] : [1, 0]) {
      for (let i = 0; i < perBlock; i++) {
        const t0 = performance.now()
        await targets[k].put(`seq${i % 100}`, value)
        block[k].push(performance.now() - t0)
        all[k].since(t0)
      }
    }
    roundRatios.push(round2(median(block[0]) / median(block[1])))
  }
  const [sa, sb] = all.map(l => l.summary())
  return {
    rounds,
    putsPerBlock: perBlock,
    a: { target: a.name, sequential: sa },
    b: { target: b.name, sequential: sb },
    p50Ratio: round2(sa.p50Ms / sb.p50Ms),
    roundRatios,
    medianRatio: median(roundRatios)
  }
}
