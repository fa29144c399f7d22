/**
 * The leader's housekeeping: a check that finds work falling due (sessions
 * and claims to expire, queues to wake, task ticks), and the commands it
 * proposes for itself, each at most once at a time: a check that finds the
 * same work while its proposal is still in flight does not propose it
 * again. A proposal that fails is simply found again by a later check.
 *
 * The check runs only while this node leads, and only when there may be
 * something to do: when the check itself said its next work falls due,
 * soon after an entry is applied (new claims, tasks, waiters), and at least
 * every `maxWaitMs`; never sooner than `minGapMs` after its last run. A
 * fixed poll on every node woke each process 60 times a second for
 * nothing, the largest share of an idle cluster's wakeups.
 */
import type { RaftNode, SoftState } from '../raft/index.js'
import type { Logger } from '../gossip/logger.js'
import { errorFields } from '../gossip/logger.js'
import type { Clock } from './clock.js'
import type { Command, CommandResult } from './coordination/commands.js'
import type { CoordinationState } from './coordination/state.js'
import type { Proposer } from './proposer.js'

export interface OwnCommandsOptions {
  readonly raft: RaftNode<CommandResult>
  readonly proposer: Proposer
  readonly log: Logger
  /** The least time between two runs of the check. */
  readonly minGapMs: number
  /** The most time between two runs while leading, whatever the check says. */
  readonly maxWaitMs: number
}

/** What each of the leader's housekeepers (sessions, claims, task ticks) is built with. */
export interface HousekeeperOptions {
  readonly raft: RaftNode<CommandResult>
  readonly state: CoordinationState
  readonly proposer: Proposer
  readonly clock: Clock
  readonly log: Logger
  /** The least time between two runs of its check. */
  readonly checkEveryMs: number
}

/** Runs the leader's check; returns the milliseconds until its next work falls due (Infinity: nothing pending). */
export type HousekeepingCheck = () => number

export class OwnCommands {
  private readonly inFlight = new Set<string>()
  private timer: NodeJS.Timeout | null = null
  /** performance.now() the armed timer fires at, or Infinity. */
  private dueAt = Infinity
  private lastRun = -Infinity
  private leading = false
  private closed = false
  private readonly onState = (s: SoftState): void => { this.setLeading(s.role === 'leader') }
  private readonly onApplied = (): void => { this.poke() }

  constructor (private readonly o: OwnCommandsOptions, private readonly check: HousekeepingCheck) {
    o.raft.on('state', this.onState)
    o.raft.on('applied', this.onApplied)
    this.setLeading(o.raft.isLeader)
  }

  /** True while the command proposed under `key` is in flight. */
  has (key: string): boolean {
    return this.inFlight.has(key)
  }

  propose (key: string, cmd: Command): void {
    if (this.inFlight.has(key)) return
    this.inFlight.add(key)
    this.o.proposer.own(cmd).catch((err: unknown) => {
      this.o.log.debug({ key, op: cmd.op, ...errorFields(err) }, 'leader housekeeping not committed; a later check tries again')
    }).finally(() => {
      this.inFlight.delete(key)
      // Its work is done or must be found again: either way the check has news.
      this.poke()
    })
  }

  /** Something changed that the check may care about: run it as soon as the gap allows. */
  poke (): void {
    if (!this.leading || this.closed) return
    this.arm(Math.max(0, this.lastRun + this.o.minGapMs - performance.now()))
  }

  /** A new term: what the previous one had in flight is no concern of this one's checks. */
  clear (): void {
    this.inFlight.clear()
  }

  close (): void {
    this.closed = true
    this.disarm()
    this.o.raft.off('state', this.onState)
    this.o.raft.off('applied', this.onApplied)
  }

  private setLeading (leading: boolean): void {
    if (leading === this.leading) return
    this.leading = leading
    if (leading) this.poke()
    else this.disarm()
  }

  /** Fires the check in `ms` unless it is already due sooner. */
  private arm (ms: number): void {
    const at = performance.now() + ms
    if (at >= this.dueAt) return
    this.disarm()
    this.dueAt = at
    this.timer = setTimeout(() => { this.run() }, ms)
    this.timer.unref()
  }

  private disarm (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.dueAt = Infinity
  }

  private run (): void {
    this.timer = null
    this.dueAt = Infinity
    if (!this.leading || this.closed) return
    this.lastRun = performance.now()
    let next = this.o.maxWaitMs
    try {
      next = this.check()
    } finally {
      this.arm(Math.min(this.o.maxWaitMs, Math.max(this.o.minGapMs, next)))
    }
  }
}
