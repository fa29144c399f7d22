/**
 * Simulated time for one incarnation of a node: the real driver's timers run
 * on the simulator's event queue, at the node's own clock rate (clocks drift
 * apart a little, as real ones do), and stop for good when the incarnation
 * crashes.
 */
import type { Clock, TimerHandle } from '../raft/driver/clock.js'

/** The simulator's event queue, as a clock needs it. */
export interface Scheduler {
  readonly now: number
  at(time: number, fn: () => void): void
}

interface Timer {
  live: boolean
}

export class SimClock implements Clock {
  constructor (private readonly scheduler: Scheduler, private readonly alive: () => boolean, private readonly rate: number) {}

  now (): number {
    return this.scheduler.now
  }

  setTimeout (fn: () => void, ms: number): TimerHandle {
    const timer: Timer = { live: true }
    this.scheduler.at(this.scheduler.now + ms * this.rate, () => {
      if (!timer.live || !this.alive()) return
      timer.live = false
      fn()
    })
    return timer
  }

  clearTimeout (timer: TimerHandle): void {
    (timer as Timer).live = false
  }

  setInterval (fn: () => void, ms: number): TimerHandle {
    const timer: Timer = { live: true }
    const fire = (): void => {
      if (!timer.live || !this.alive()) return
      this.scheduler.at(this.scheduler.now + ms * this.rate, fire)
      fn()
    }
    this.scheduler.at(this.scheduler.now + ms * this.rate, fire)
    return timer
  }

  clearInterval (timer: TimerHandle): void {
    (timer as Timer).live = false
  }
}
