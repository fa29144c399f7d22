/**
 * Time as the driver sees it: timers and a monotonic clock, injected so that
 * a simulation can run the real driver on simulated time. Production uses
 * {@link systemClock}.
 */

/** A timer, as returned by {@link Clock.setTimeout} and {@link Clock.setInterval}; opaque to the caller. */
export type TimerHandle = unknown

export interface Clock {
  /** Milliseconds on a monotonic clock (not wall time). */
  now(): number
  setTimeout(fn: () => void, ms: number): TimerHandle
  clearTimeout(timer: TimerHandle): void
  setInterval(fn: () => void, ms: number): TimerHandle
  clearInterval(timer: TimerHandle): void
}

/** The process's own timers and performance.now(). */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: timer => { clearTimeout(timer as NodeJS.Timeout) },
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: timer => { clearInterval(timer as NodeJS.Timeout) }
}
