/**
 * The queue and scheduler parts of `cluster.status()`, read from this
 * node's applied state.
 */
import type { CoordinationState } from './coordination/state.js'
import type { TaskRun } from './coordination/schedule-table.js'
import { queueStats, type QueueStats } from './queues/queue.js'
import { nextAfter, parseSpecText } from './scheduler/schedule-spec.js'

export interface QueueStatus extends QueueStats {
  readonly name: string
}

export interface RunStatus {
  readonly node: string
  readonly fence: string
  readonly scheduledAt: number
  readonly startedAt: number
  readonly finishedAt: number | null
  readonly durationMs: number | null
  readonly outcome: TaskRun['outcome']
  readonly error: string | null
}

export interface ScheduleStatus {
  readonly task: string
  /** Nodes that registered the task. */
  readonly nodes: string[]
  /** True when nodes registered different definitions: the task does not run. */
  readonly conflict: boolean
  readonly running: RunStatus | null
  readonly lastRun: RunStatus | null
  /** The next tick's scheduled time, or null if unknown. */
  readonly nextRunAt: number | null
  readonly runs: number
  readonly skipped: number
  readonly missed: number
  readonly conflicts: number
}

export function queueStatus (state: CoordinationState, now: number): QueueStatus[] {
  return state.queues.names().sort().map(name => ({ name, ...queueStats(state, name, now) }))
}

export function scheduleStatus (state: CoordinationState): ScheduleStatus[] {
  return [...state.schedules.all()].sort((a, b) => a.name.localeCompare(b.name)).map(t => {
    const agreed = state.schedules.agreedSpec(t.name)
    const spec = agreed === null ? null : parseSpecText(agreed)
    return {
      task: t.name,
      nodes: [...new Set([...t.defs.values()].map(d => d.node))].sort(),
      conflict: t.defs.size > 0 && agreed === null,
      running: run(t.running),
      lastRun: run(t.lastRun),
      nextRunAt: spec === null || t.lastScheduledAt === null ? null : nextAfter(spec, t.lastScheduledAt),
      runs: t.runs,
      skipped: t.skipped,
      missed: t.missed,
      conflicts: t.conflicts
    }
  })
}

function run (r: TaskRun | null): RunStatus | null {
  if (r === null) return null
  return { node: r.node, fence: String(r.fence), scheduledAt: r.scheduledAt, startedAt: r.startedAt, finishedAt: r.finishedAt, durationMs: r.finishedAt === null ? null : Math.max(0, r.finishedAt - r.startedAt), outcome: r.outcome, error: r.error }
}
