/**
 * Scheduled tasks on the coordination log: which sessions registered each
 * task (and with which definition), and which one runs each tick.
 *
 * The leader proposes a `tick` when a task falls due; applying it assigns
 * the tick to one registered session, round robin, with the entry's index as
 * fence. A tick is assigned at most once (a tick at or before the task's
 * last scheduled time is ignored, so two leaders proposing the same tick run
 * it once), and not while the previous run is still going (skipped and
 * counted, as ShedLock does). A run ends when its runner says so, or when
 * the runner's session ends. Tasks whose registered definitions differ are
 * not run at all: every tick is counted as a conflict and reported.
 */
import { EventEmitter } from 'node:events'

export interface TaskRun {
  readonly session: string
  readonly node: string
  readonly fence: number
  readonly scheduledAt: number
  readonly startedAt: number
  finishedAt: number | null
  outcome: 'running' | 'ok' | 'error' | 'lost'
  error: string | null
}

export interface TaskRecord {
  readonly name: string
  /** Definition (the task's schedule, as JSON) per registered session. */
  readonly defs: Map<string, { node: string, spec: string }>
  lastScheduledAt: number | null
  running: TaskRun | null
  lastRun: TaskRun | null
  runs: number
  /** Ticks not started because the previous run was still going. */
  skipped: number
  /** Ticks that fell due while no tick could be proposed (no quorum), not run. */
  missed: number
  /** Ticks not run because the definitions differ. */
  conflicts: number
  cursor: number
}

export interface ScheduleEvents {
  /** This tick runs on `session`. */
  assigned: [{ task: string, session: string, fence: number, scheduledAt: number }]
  /** A run ended (done, or its session ended). */
  finished: [{ task: string, run: TaskRun }]
}

export type ScheduleOpResult = { readonly ok: true, readonly value?: unknown } | { readonly ok: false, readonly error: 'invalid', readonly message: string }

export class ScheduleTable extends EventEmitter<ScheduleEvents> {
  private tasks = new Map<string, TaskRecord>()

  get (name: string): Readonly<TaskRecord> | undefined {
    return this.tasks.get(name)
  }

  all (): IterableIterator<Readonly<TaskRecord>> {
    return this.tasks.values()
  }

  /** The one definition every registrant agrees on, or null (none registered, or they differ). */
  agreedSpec (name: string): string | null {
    const t = this.tasks.get(name)
    if (t === undefined || t.defs.size === 0) return null
    const specs = new Set([...t.defs.values()].map(d => d.spec))
    return specs.size === 1 ? [...specs][0] : null
  }

  register (name: string, spec: string, ctx: { session: string, node: string }): ScheduleOpResult {
    const t = this.record(name)
    t.defs.set(ctx.session, { node: ctx.node, spec })
    return { ok: true, value: { conflict: this.agreedSpec(name) === null } }
  }

  unregister (name: string, session: string): ScheduleOpResult {
    this.tasks.get(name)?.defs.delete(session)
    return { ok: true }
  }

  /** Leader only: the tick at `scheduledAt` fell due; `missed` earlier ones were passed over. */
  tick (name: string, scheduledAt: number, run: boolean, missed: number, ctx: { index: number, stamp: number }): ScheduleOpResult {
    const t = this.tasks.get(name)
    if (t === undefined || (t.lastScheduledAt !== null && scheduledAt <= t.lastScheduledAt)) return { ok: true }
    t.lastScheduledAt = scheduledAt
    t.missed += missed
    if (!run) {
      t.missed++
      return { ok: true }
    }
    if (this.agreedSpec(name) === null) {
      t.conflicts++
      return { ok: true }
    }
    if (t.running !== null) {
      t.skipped++
      return { ok: true }
    }
    const sessions = [...t.defs.keys()].sort()
    const session = sessions[t.cursor % sessions.length]
    t.cursor = (t.cursor + 1) % Math.max(1, sessions.length)
    const node = (t.defs.get(session) as { node: string }).node
    t.running = { session, node, fence: ctx.index, scheduledAt, startedAt: ctx.stamp, finishedAt: null, outcome: 'running', error: null }
    t.runs++
    this.emit('assigned', { task: name, session, fence: ctx.index, scheduledAt })
    return { ok: true }
  }

  /** The runner reports its run finished. */
  done (name: string, fence: number, outcome: 'ok' | 'error', error: string | null, ctx: { session: string, stamp: number }): ScheduleOpResult {
    const t = this.tasks.get(name)
    if (t?.running?.fence !== fence || t.running.session !== ctx.session) return { ok: false, error: 'invalid', message: `run ${fence} of task ${name} is not running on this session` }
    this.finish(t, outcome, error, ctx.stamp)
    return { ok: true }
  }

  endSession (session: string, stamp: number): void {
    for (const t of this.tasks.values()) {
      t.defs.delete(session)
      if (t.running?.session === session) this.finish(t, 'lost', 'the runner\'s session ended', stamp)
    }
  }

  toJSON (): unknown[] {
    return [...this.tasks.values()].map(t => ({ ...t, defs: [...t.defs] }))
  }

  restore (raw: unknown[]): void {
    this.tasks = new Map((raw as Array<TaskRecord & { defs: Array<[string, { node: string, spec: string }]> }>).map(t => [t.name, { ...t, defs: new Map(t.defs) }]))
  }

  private finish (t: TaskRecord, outcome: 'ok' | 'error' | 'lost', error: string | null, stamp: number): void {
    const run = t.running as TaskRun
    run.finishedAt = stamp
    run.outcome = outcome
    run.error = error
    t.running = null
    t.lastRun = run
    this.emit('finished', { task: t.name, run })
  }

  private record (name: string): TaskRecord {
    let t = this.tasks.get(name)
    if (t === undefined) {
      t = { name, defs: new Map(), lastScheduledAt: null, running: null, lastRun: null, runs: 0, skipped: 0, missed: 0, conflicts: 0, cursor: 0 }
      this.tasks.set(name, t)
    }
    return t
  }
}
