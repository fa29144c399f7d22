/**
 * The coordination state on the log (sessions, locks, panic) and this
 * node's lock acquisitions, timed from the caller's side because that is
 * the wait an application feels: the Raft round trip plus the queue.
 */
import { Counter, Histogram, type Registry } from 'prom-client'
import type { LockKind } from '../coordination/commands.js'
import type { ClusterStatus } from '../status.js'
import { collectedGauge, labelledGauge, perScrape } from './collected.js'

export interface CoordinationMetrics {
  lockGranted(): void
  sessionEnded(reason: string): void
  /** Runs one acquire and records how long it took and how it ended. */
  timeAcquire<T>(acquire: () => Promise<T>): Promise<T>
}

const LOCK_KINDS: readonly LockKind[] = ['lock', 'election']
const ACQUIRE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

export function registerCoordinationMetrics (registry: Registry, status: () => ClusterStatus): CoordinationMetrics {
  const s = perScrape(status)
  collectedGauge(registry, 'raftmesh_sessions', 'Open sessions in the applied state.', () => s().sessions.length)
  collectedGauge(registry, 'raftmesh_session_open', '1 while this node holds an open session.', () => s().session.id === null ? 0 : 1)
  labelledGauge(registry, 'raftmesh_locks_held', 'Locks (and elections) with a holder in the applied state.', ['kind'],
    () => LOCK_KINDS.map(kind => [{ kind }, s().locks.filter(l => l.kind === kind && l.holder !== null).length] as const))
  collectedGauge(registry, 'raftmesh_lock_waiters', 'Acquires queued behind a holder, over all locks.', () => s().locks.reduce((n, l) => n + l.waiters, 0))
  collectedGauge(registry, 'raftmesh_panic', '1 while this node is in quorum-loss panic.', () => s().panic === null ? 0 : 1)
  const grants = new Counter({ name: 'raftmesh_lock_grants_total', help: 'Lock and election grants applied on this node (every node applies every grant).', registers: [registry] })
  const ended = new Counter({ name: 'raftmesh_sessions_ended_total', help: 'Sessions ended in the applied state, by reason.', labelNames: ['reason'], registers: [registry] })
  const acquire = new Histogram({ name: 'raftmesh_lock_acquire_seconds', help: 'This node\'s lock acquire calls, from call to grant or failure.', labelNames: ['outcome'], buckets: ACQUIRE_BUCKETS, registers: [registry] })
  return {
    lockGranted: () => { grants.inc() },
    sessionEnded: reason => { ended.inc({ reason }) },
    timeAcquire: async acquireFn => {
      const end = acquire.startTimer()
      try {
        const h = await acquireFn()
        end({ outcome: 'acquired' })
        return h
      } catch (err) {
        end({ outcome: err instanceof Error ? err.name : 'error' })
        throw err
      }
    }
  }
}
