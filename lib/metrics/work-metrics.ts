/**
 * Queues and scheduled tasks, read from `status()` at scrape time: queue
 * depth, age and claims per queue; runs, skips, misses and conflicts per
 * task. Every node reports the same applied state, labelled with its id.
 */
import type { Registry } from 'prom-client'
import type { ClusterStatus } from '../status.js'
import { labelledGauge, perScrape } from './collected.js'

export function registerWorkMetrics (registry: Registry, status: () => ClusterStatus): void {
  const s = perScrape(status)
  const perQueue = (read: (q: ClusterStatus['queues'][number]) => number | null) => () => s().queues.flatMap(q => {
    const v = read(q)
    return v === null ? [] : [[{ queue: q.name }, v] as const]
  })
  labelledGauge(registry, 'raftmesh_queue_depth', 'Items waiting in a queue (ready and delayed).', ['queue'], perQueue(q => q.depth))
  labelledGauge(registry, 'raftmesh_queue_delayed', 'Items in a queue not yet due.', ['queue'], perQueue(q => q.delayed))
  labelledGauge(registry, 'raftmesh_queue_in_flight', 'Items claimed and not yet acked.', ['queue'], perQueue(q => q.inFlight))
  labelledGauge(registry, 'raftmesh_queue_dead_letters', 'Items whose attempts ran out.', ['queue'], perQueue(q => q.deadLetters))
  labelledGauge(registry, 'raftmesh_queue_waiting_claims', 'Items workers are waiting for.', ['queue'], perQueue(q => q.waiting))
  labelledGauge(registry, 'raftmesh_queue_acked', 'Items acked since the queue began (a running total kept on the log).', ['queue'], perQueue(q => q.acked))
  labelledGauge(registry, 'raftmesh_queue_oldest_age_seconds', 'Age of the oldest ready item.', ['queue'], perQueue(q => q.oldestAgeMs === null ? null : q.oldestAgeMs / 1000))
  const perTask = (read: (x: ClusterStatus['schedules'][number]) => number) => () => s().schedules.map(x => [{ task: x.task }, read(x)] as const)
  labelledGauge(registry, 'raftmesh_task_runs', 'Ticks of a scheduled task assigned to a node (a running total kept on the log).', ['task'], perTask(x => x.runs))
  labelledGauge(registry, 'raftmesh_task_skipped', 'Ticks skipped because the previous run was still going.', ['task'], perTask(x => x.skipped))
  labelledGauge(registry, 'raftmesh_task_missed', 'Ticks that fell due without a quorum and were not run.', ['task'], perTask(x => x.missed))
  labelledGauge(registry, 'raftmesh_task_conflicts', 'Ticks not run because nodes registered different definitions.', ['task'], perTask(x => x.conflicts))
  labelledGauge(registry, 'raftmesh_task_running', '1 while a run of the task is going somewhere.', ['task'], perTask(x => x.running === null ? 0 : 1))
  labelledGauge(registry, 'raftmesh_task_last_duration_seconds', 'Duration of the last finished run (leader stamps).', ['task'], () => s().schedules.flatMap(x => x.lastRun?.durationMs == null ? [] : [[{ task: x.task }, x.lastRun.durationMs / 1000] as const]))
}
