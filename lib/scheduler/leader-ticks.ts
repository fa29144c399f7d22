/**
 * The leader proposes each scheduled task's ticks as they fall due, on its
 * wall clock. The state machine assigns each tick once, so a tick proposed
 * twice (a retry, or two leaders around a change) runs once.
 *
 * Ticks that fell due while no tick could be proposed (no quorum, no
 * leader) follow the task's `missed` policy: `run-once` runs the latest of
 * them once; `skip` runs it only if it is no later than a grace period, and
 * otherwise counts it missed and waits for the next.
 */
import { OwnCommands, type HousekeeperOptions } from '../own-commands.js'
import { nextAfter, parseSpecText, type NormalizedSchedule } from './schedule-spec.js'

/** A tick this late is still run under `missed: 'skip'`. */
const SKIP_GRACE_MS = 5000
/** The wall clock can be stepped, so the next due tick is worked out again at least this often. */
const MAX_WAIT_MS = 1000
/** Due ticks counted one by one at most; beyond, the rest are skipped in one step. */
const MAX_CATCH_UP = 100_000

export class LeaderTicks {
  private readonly o: HousekeeperOptions
  private readonly own: OwnCommands
  /** When this node first saw a task that has never ticked: its first tick is the next after that. */
  private readonly firstSeen = new Map<string, number>()

  constructor (o: HousekeeperOptions) {
    this.o = o
    this.own = new OwnCommands({ raft: o.raft, proposer: o.proposer, log: o.log, minGapMs: o.checkEveryMs, maxWaitMs: Math.max(o.checkEveryMs, MAX_WAIT_MS) }, () => this.check())
  }

  close (): void {
    this.own.close()
  }

  /** Proposes the ticks that fell due; returns the ms until the next one does. */
  private check (): number {
    const { raft, state, clock } = this.o
    if (!raft.isLeader) return Infinity
    const now = clock.wall()
    let next = Infinity
    for (const task of state.schedules.all()) {
      if (task.defs.size === 0 || this.own.has(task.name)) continue
      // Differing definitions still tick, by the first, so the conflict is counted where everyone sees it.
      const text = state.schedules.agreedSpec(task.name) ?? [...task.defs.values()].map(d => d.spec).sort()[0]
      const spec = parseSpecText(text)
      if (spec === null) continue
      const from = task.lastScheduledAt ?? this.firstSeen.get(task.name) ?? now
      if (task.lastScheduledAt === null && !this.firstSeen.has(task.name)) this.firstSeen.set(task.name, now)
      const due = latestDue(spec, from, now)
      if (due === null) {
        next = Math.min(next, nextAfter(spec, from) - now)
        continue
      }
      const run = spec.missed === 'run-once' || now - due.at <= SKIP_GRACE_MS
      this.own.propose(task.name, { op: 'tick', task: task.name, scheduledAt: due.at, run, missed: due.missed })
    }
    return next
  }
}

/** The latest scheduled time after `from` and at or before `now`, and how many earlier ones it passes over. */
export function latestDue (spec: NormalizedSchedule, from: number, now: number): { at: number, missed: number } | null {
  let at = nextAfter(spec, from)
  if (at > now) return null
  let missed = 0
  for (let next = nextAfter(spec, at); next <= now; next = nextAfter(spec, at)) {
    if (++missed >= MAX_CATCH_UP) {
      // So far behind that counting is pointless: jump to the last slot before now.
      if (spec.kind === 'every') {
        const every = spec.everyMs as number
        const last = Math.floor(now / every) * every
        missed += Math.round((last - next) / every)
        return { at: last, missed }
      }
    }
    at = next
  }
  return { at, missed }
}
