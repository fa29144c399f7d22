/**
 * `cluster.schedule(name, schedule, fn, opts)`: every node registers the
 * same task; the log assigns each tick to one of them (see ScheduleTable),
 * which runs `fn({ fence, scheduledAt, signal })`. The run's signal aborts
 * when this node's session lease is no longer certain (the session, and the
 * run with it, may end on the log), on quorum loss, and on stop: so no other
 * node starts the next run while this one could still think it is alone.
 */
import type { Logger } from '../../gossip/logger.js'
import { errorFields } from '../../gossip/logger.js'
import type { CommandBatcher } from '../batcher.js'
import type { CoordinationState } from '../coordination/state.js'
import { ClusterStoppedError, InvalidArgumentError, SessionLostError } from '../errors.js'
import type { SessionKeeper } from '../session.js'
import { normalizeSchedule, specText, type MissedPolicy, type Schedule } from './schedule-spec.js'

/** What a run is given. */
export interface TaskContext {
  /** Log index of the tick's assignment: strictly increasing across the task's runs. */
  readonly fence: bigint
  /** The tick's scheduled time (ms since the epoch). */
  readonly scheduledAt: number
  /** Aborts when this run can no longer be sure it is the only one (lease lapse, quorum loss), and on stop. */
  readonly signal: AbortSignal
  /** Synchronous check against the monotonic clock: false once the session lease is not certain, even in a process resumed after a pause before its timers run. */
  valid(): boolean
}

export interface ScheduleOptions {
  /** Ticks that fell due while the cluster had no quorum: skip them (default), or run the latest once. */
  readonly missed?: MissedPolicy
}

/** A task registered on this node. */
export interface ScheduledTask {
  readonly name: string
  /** Runs of this task on this node that finished (ok or error). */
  readonly runsHere: number
  /** Stops taking ticks here; a run in progress gets its signal aborted. */
  stop(): Promise<void>
}

interface Registered {
  readonly name: string
  readonly spec: string
  readonly fn: (ctx: TaskContext) => Promise<void>
  readonly running: Map<number, AbortController>
  runsHere: number
}

/** A task stopped while the cluster has no quorum stops locally at once; its registration ends with the session. */
const UNREGISTER_TIMEOUT_MS = 5000

export interface SchedulerServiceOptions {
  readonly state: CoordinationState
  readonly batcher: CommandBatcher
  readonly keeper: SessionKeeper
  readonly log: Logger
}

export class SchedulerService {
  private readonly o: SchedulerServiceOptions
  private readonly tasks = new Map<string, Registered>()
  private stopped = false

  constructor (o: SchedulerServiceOptions) {
    this.o = o
    o.state.schedules.on('assigned', a => {
      if (a.session !== o.keeper.session) return
      const task = this.tasks.get(a.task)
      if (task === undefined) {
        this.report(a.task, a.fence, a.session, 'error', 'the task is no longer registered on this node')
        return
      }
      this.run(task, a.fence, a.scheduledAt, a.session)
    })
    o.state.schedules.on('finished', f => {
      const task = this.tasks.get(f.task)
      if (f.run.outcome === 'lost') task?.running.get(f.run.fence)?.abort(new SessionLostError(`run ${f.run.fence} of task ${f.task} ended on the log: ${f.run.error ?? 'lost'}`))
    })
    o.keeper.on('opened', () => { for (const t of this.tasks.values()) this.register(t) })
    o.keeper.on('lost', ({ reason }) => { this.abortAll(new SessionLostError(`this node's session ended (${reason}); the next tick may run elsewhere`)) })
    o.keeper.on('panic', ({ reason }) => { this.abortAll(new SessionLostError(`quorum lost: ${reason}`)) })
  }

  schedule (name: string, schedule: Schedule, fn: (ctx: TaskContext) => Promise<void>, opts: ScheduleOptions = {}): ScheduledTask {
    if (this.stopped) throw new ClusterStoppedError()
    if (typeof fn !== 'function') throw new InvalidArgumentError('a scheduled task needs a function')
    if (this.tasks.has(name)) throw new InvalidArgumentError(`task ${name} is already scheduled on this node`)
    const spec = specText(normalizeSchedule(schedule, opts.missed))
    const task: Registered = { name, spec, fn, running: new Map(), runsHere: 0 }
    this.tasks.set(name, task)
    this.register(task)
    return {
      name,
      get runsHere () { return task.runsHere },
      stop: async () => { await this.unschedule(task) }
    }
  }

  /** The node is stopping: runs are aborted; the session's end unregisters every task on the log. */
  stop (): void {
    this.stopped = true
    for (const t of this.tasks.values()) for (const c of t.running.values()) c.abort(new ClusterStoppedError('the cluster node is stopping'))
    this.tasks.clear()
  }

  private async unschedule (task: Registered): Promise<void> {
    if (this.tasks.get(task.name) !== task) return
    this.tasks.delete(task.name)
    for (const c of task.running.values()) c.abort(new ClusterStoppedError(`task ${task.name} was stopped on this node`))
    const session = this.o.keeper.session
    if (session !== null) await this.o.batcher.submit(session, { op: 'task-unregister', task: task.name }, { timeoutMs: UNREGISTER_TIMEOUT_MS }).catch(() => {})
  }

  private register (task: Registered): void {
    const session = this.o.keeper.session
    if (session === null || this.stopped) return
    this.o.batcher.submit(session, { op: 'task-register', task: task.name, spec: task.spec }).then(({ result }) => {
      if (result.ok && (result.value as { conflict?: boolean } | undefined)?.conflict === true) {
        this.o.log.error({ task: task.name, spec: task.spec }, 'the task is registered with different definitions on different nodes; it will not run until they agree')
      }
    }, (err: unknown) => {
      this.o.log.warn({ task: task.name, ...errorFields(err) }, 'task not registered; it is registered again with the next session')
    })
  }

  private run (task: Registered, fence: number, scheduledAt: number, session: string): void {
    const controller = new AbortController()
    task.running.set(fence, controller)
    const go = async (): Promise<void> => {
      if (!this.o.keeper.valid(session)) throw new SessionLostError('this node\'s session lease is not certain')
      await task.fn({ fence: BigInt(fence), scheduledAt, signal: controller.signal, valid: () => !controller.signal.aborted && this.o.keeper.valid(session) })
    }
    go().then(() => {
      task.runsHere++
      this.report(task.name, fence, session, 'ok', null)
    }, (err: unknown) => {
      task.runsHere++
      this.report(task.name, fence, session, 'error', (err as Error)?.message ?? String(err))
    }).finally(() => {
      task.running.delete(fence)
      controller.abort(new ClusterStoppedError('the run finished'))
    })
  }

  private report (name: string, fence: number, session: string, outcome: 'ok' | 'error', error: string | null): void {
    if (this.o.keeper.session !== session) return
    this.o.batcher.submit(session, { op: 'task-done', task: name, fence, outcome, error: error?.slice(0, 1024) ?? null }).catch((err: unknown) => {
      this.o.log.debug({ task: name, fence, ...errorFields(err) }, 'run end not recorded; the session\'s end will record it')
    })
  }

  private abortAll (reason: Error): void {
    for (const t of this.tasks.values()) for (const c of t.running.values()) c.abort(reason)
  }
}
