/**
 * The three probes OpenMRS (and Kubernetes) use, computed from a status
 * snapshot so that they are pure and agree with what `/cluster/status`
 * shows at the same moment.
 */
import type { ClusterStatus } from '../status.js'

export type Probe = 'alive' | 'started' | 'ready'

export type ProbeResult = { readonly ok: true } | { readonly ok: false, readonly reason: string }

export interface ProbeInput {
  /** Null once the cluster is stopping: every probe then fails. */
  readonly status: ClusterStatus | null
  /** Ready tolerates this many committed entries not yet applied. */
  readonly maxApplyLag: number
}

/**
 * A follower applies one Append batch (512 entries at most by default) per
 * Raft round, and shows the batch as committed but unapplied while its
 * fsync runs; a node further behind than that is replaying a backlog.
 */
export const DEFAULT_MAX_APPLY_LAG = 512

export function probe (which: Probe, i: ProbeInput): ProbeResult {
  const s = i.status
  if (s === null) return { ok: false, reason: 'the cluster node is stopped' }
  // The handler exists only once Cluster.start has joined, so started holds from then on.
  if (which === 'started') return { ok: true }
  // A panicked node must be restarted: that is what a failing liveness probe asks for.
  if (s.panic !== null) return { ok: false, reason: `quorum-loss panic: ${s.panic.reason}` }
  if (which === 'alive') return { ok: true }
  const { raft } = s
  if (!raft.voters.includes(s.id) && !raft.learners.includes(s.id)) return { ok: false, reason: 'not a member of the Raft configuration' }
  if (raft.leader === null) return { ok: false, reason: `no known leader (role ${raft.role}, term ${raft.term})` }
  if (s.session.id === null) return { ok: false, reason: 'no open session' }
  const lag = raft.commitIndex - raft.appliedIndex
  if (lag > i.maxApplyLag) return { ok: false, reason: `applied index ${raft.appliedIndex} trails commit index ${raft.commitIndex} by ${lag} (more than ${i.maxApplyLag})` }
  return { ok: true }
}
