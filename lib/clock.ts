/**
 * Time as lib/ uses it: a monotonic clock for leases and deadlines (it does
 * not jump when the wall clock is set, and keeps counting through a
 * SIGSTOP), and the wall clock only for the leader's stamps on entries.
 */
import { performance } from 'node:perf_hooks'

export interface Clock {
  /** Monotonic milliseconds. */
  monotonic(): number
  /** Wall-clock milliseconds since the epoch. */
  wall(): number
}

export const systemClock: Clock = {
  monotonic: () => performance.now(),
  wall: () => Date.now()
}
