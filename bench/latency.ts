/**
 * Latency recording for benchmarks: an HDR histogram in microseconds,
 * reported in milliseconds.
 */
import * as hdr from 'hdr-histogram-js'

export interface LatencySummary {
  count: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

export class Latency {
  private readonly h = hdr.build({ useWebAssembly: false, lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })

  /** Records one sample, given a start from performance.now(). */
  since (startMs: number): void {
    this.record(performance.now() - startMs)
  }

  /** Records one sample in milliseconds (e.g. measured in another process). */
  record (ms: number): void {
    this.h.recordValue(Math.max(1, Math.round(ms * 1000)))
  }

  summary (): LatencySummary {
    const ms = (us: number): number => Math.round(us) / 1000
    return {
      count: this.h.totalCount,
      p50Ms: ms(this.h.getValueAtPercentile(50)),
      p99Ms: ms(this.h.getValueAtPercentile(99)),
      maxMs: ms(this.h.maxValue)
    }
  }
}
