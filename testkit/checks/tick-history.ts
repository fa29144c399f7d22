/**
 * Checks the runs of one scheduled task recorded by several processes:
 * each tick ran at most once, fences grow with the ticks, a run never began
 * while an earlier one elsewhere could still act (its last passing
 * `valid()` came before the later start), and the task never went longer
 * than `maxGapMs` without a run.
 */
import type { HistoryEntry } from '../cluster-processes.js'

export interface TickRun { node: number, fence: bigint, scheduledAt: number, startedAt: number, heldUntil: number }

export function tickRuns (history: readonly HistoryEntry[], task: string): TickRun[] {
  const runs: TickRun[] = []
  for (const e of history) if (e.type === 'task-run' && e.task === task) runs.push({ node: e.node, fence: e.fence, scheduledAt: e.scheduledAt, startedAt: e.startedAt, heldUntil: e.heldUntil })
  return runs
}

export function checkTicks (runs: readonly TickRun[], opts: { maxGapMs: number }): string[] {
  const out: string[] = []
  const seen = new Map<number, TickRun>()
  for (const r of runs) {
    const other = seen.get(r.scheduledAt)
    if (other !== undefined) out.push(`tick ${r.scheduledAt} ran twice: n${other.node + 1} (fence ${other.fence}) and n${r.node + 1} (fence ${r.fence})`)
    seen.set(r.scheduledAt, r)
  }
  const byTick = [...runs].sort((a, b) => a.scheduledAt - b.scheduledAt)
  for (let i = 1; i < byTick.length; i++) {
    if (byTick[i].fence <= byTick[i - 1].fence) out.push(`tick ${byTick[i].scheduledAt} has fence ${byTick[i].fence}, not above tick ${byTick[i - 1].scheduledAt}'s ${byTick[i - 1].fence}`)
  }
  const byStart = [...runs].sort((a, b) => a.startedAt - b.startedAt)
  for (let i = 1; i < byStart.length; i++) {
    const [a, b] = [byStart[i - 1], byStart[i]]
    if (a.heldUntil > b.startedAt) out.push(`n${b.node + 1} started tick ${b.scheduledAt} at ${Math.round(b.startedAt)} while n${a.node + 1}'s run of tick ${a.scheduledAt} was valid until ${Math.round(a.heldUntil)}`)
    if (b.startedAt - a.startedAt > opts.maxGapMs) out.push(`no run for ${Math.round(b.startedAt - a.startedAt)} ms after ${Math.round(a.startedAt)} (bound ${opts.maxGapMs} ms)`)
  }
  return out
}
