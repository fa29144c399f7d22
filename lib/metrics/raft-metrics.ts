/**
 * Raft as this node sees it: term, indexes, role, the voter set, and (on
 * the leader) how far each follower's log trails.
 */
import { Counter, type Registry } from 'prom-client'
import type { RaftStatus } from '../../raft/index.js'
import { collectedGauge, labelledGauge, perScrape } from './collected.js'

const ROLES = ['follower', 'preCandidate', 'candidate', 'leader'] as const

export interface RaftMetrics {
  /** Counts a change of leader (including to none). */
  leaderChanged(): void
}

export function registerRaftMetrics (registry: Registry, status: () => RaftStatus): RaftMetrics {
  const s = perScrape(status)
  collectedGauge(registry, 'raftmesh_raft_term', 'Current Raft term.', () => s().term)
  collectedGauge(registry, 'raftmesh_raft_commit_index', 'Highest log index known committed.', () => s().commitIndex)
  collectedGauge(registry, 'raftmesh_raft_applied_index', 'Highest log index applied to the coordination state.', () => s().appliedIndex)
  collectedGauge(registry, 'raftmesh_raft_last_index', 'Index of the last entry in this node\'s log.', () => s().lastIndex)
  collectedGauge(registry, 'raftmesh_raft_snapshot_index', 'Index covered by the latest snapshot.', () => s().snapshotIndex)
  collectedGauge(registry, 'raftmesh_raft_has_leader', '1 if this node knows a leader.', () => s().leader === null ? 0 : 1)
  collectedGauge(registry, 'raftmesh_raft_voters', 'Voters in the current configuration.', () => s().config.voters.length)
  collectedGauge(registry, 'raftmesh_raft_learners', 'Learners in the current configuration.', () => s().config.learners.length)
  labelledGauge(registry, 'raftmesh_raft_role', '1 for this node\'s current Raft role, 0 for the others.', ['role'],
    () => ROLES.map(role => [{ role }, s().role === role ? 1 : 0] as const))
  labelledGauge(registry, 'raftmesh_raft_follower_lag_entries', 'Leader only: entries each follower\'s log trails the leader\'s.', ['member'],
    () => Object.entries(s().progress).filter(([id]) => id !== s().id).map(([member, p]) => [{ member }, Math.max(0, s().lastIndex - p.match)] as const))
  const changes = new Counter({ name: 'raftmesh_raft_leader_changes_total', help: 'Times the leader this node knows changed (to another node or to none).', registers: [registry] })
  return { leaderChanged: () => { changes.inc() } }
}
