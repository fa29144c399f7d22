/**
 * Metrics read from their source when Prometheus scrapes, instead of being
 * pushed on every event: the numbers already live in `status()` and the
 * `stats()` of each layer, and a scrape every few seconds costs less than
 * an update per Raft entry.
 */
import { Counter, Gauge, type Registry } from 'prom-client'

export type Labelled = Iterable<readonly [Record<string, string>, number]>

export function collectedGauge (registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({ name, help, registers: [registry], collect () { this.set(read()) } })
}

/** Label sets that are gone from the source (a closed cache, a departed member) are dropped at the next scrape. */
export function labelledGauge (registry: Registry, name: string, help: string, labelNames: readonly string[], read: () => Labelled): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect () {
      this.reset()
      for (const [labels, v] of read()) this.set(labels, v)
    }
  })
}

/** A counter kept by the source (a `stats()` field): Prometheus sees the source's running total. */
export function collectedCounter (registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect () {
      this.reset()
      this.inc(read())
    }
  })
}

export function labelledCounter (registry: Registry, name: string, help: string, labelNames: readonly string[], read: () => Labelled): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect () {
      this.reset()
      for (const [labels, v] of read()) this.inc(labels, v)
    }
  })
}

/**
 * One scrape reads many metrics from the same snapshot; building it once
 * per scrape (until the event loop turns) keeps a scrape's numbers
 * consistent with each other and its cost independent of the metric count.
 */
export function perScrape<T> (build: () => T): () => T {
  let cached: { value: T } | null = null
  return () => {
    if (cached === null) {
      cached = { value: build() }
      setImmediate(() => { cached = null })
    }
    return cached.value
  }
}
