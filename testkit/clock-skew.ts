/**
 * A process whose clock runs fast or slow: clock-skew-preload.ts, loaded
 * with `--import` before the program, makes `performance.now()`, `Date.now()` and the global
 * `setTimeout`, `setInterval` and `AbortSignal.timeout` run at
 * `RAFTMESH_TEST_CLOCK_RATE` times real time (1.05: a clock that gains 5%;
 * its 1,000 ms timer fires after 952 real ms). This is the
 * rate drift the session lease's margin must cover (LEASE_MARGIN in
 * lib/session.ts); a clock that is merely offset changes nothing, because
 * leases are measured on each node's own monotonic clock.
 *
 * `process.hrtime` is left alone on purpose: the fault bench's history
 * timestamps (machineNow in testkit/cluster-node-protocol.ts) read it, so
 * the recorded history stays on the machine's one true time line.
 *
 * A rate of 1, or none set, patches nothing.
 */
import { performance } from 'node:perf_hooks'

export const CLOCK_RATE_ENV = 'RAFTMESH_TEST_CLOCK_RATE'

/** The rate in `value`, or an error: a typo must not silently run an unskewed node. */
export function parseClockRate (value: string | undefined): number {
  if (value === undefined || value === '') return 1
  const rate = Number(value)
  if (!Number.isFinite(rate) || rate < 0.1 || rate > 10) throw new Error(`${CLOCK_RATE_ENV} must be a number from 0.1 to 10, got ${JSON.stringify(value)}`)
  return rate
}

/** Makes this process's clocks and timers run at `rate` times real time from now on. Call once, first thing. */
export function skewClock (rate: number): void {
  if (rate === 1) return
  const realNow = performance.now.bind(performance)
  const realDateNow = Date.now
  const realSetTimeout = globalThis.setTimeout
  const realSetInterval = globalThis.setInterval
  const realAbortTimeout = AbortSignal.timeout.bind(AbortSignal)
  const t0 = realNow()
  const wall0 = realDateNow()
  const scaled = (ms: number | undefined): number => Math.max(0, (ms ?? 0) / rate)
  performance.now = () => t0 + (realNow() - t0) * rate
  Date.now = () => Math.floor(wall0 + (realNow() - t0) * rate)
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => realSetTimeout(fn, scaled(ms), ...args)) as typeof setTimeout
  globalThis.setInterval = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => realSetInterval(fn, scaled(ms), ...args)) as typeof setInterval
  // AbortSignal.timeout takes whole milliseconds only.
  AbortSignal.timeout = (ms: number) => realAbortTimeout(Math.round(scaled(ms)))
}
