/**
 * `cluster.status()`: plain JSON an operator (or the dashboard) can read.
 */
import type { Member } from '../gossip/membership.js'
import type { RaftStatus } from '../raft/index.js'
import type { CacheMode, CacheStats } from './cache/cache.js'
import type { CoordinationState } from './coordination/state.js'
import type { EventStats } from './events/events.js'
import type { PanicInfo } from './options.js'
import { queueStatus, scheduleStatus, type QueueStatus, type ScheduleStatus } from './status-services.js'

export interface MemberStatus {
  readonly id: string
  /**
   * As this node knows it: its own Raft role for itself, `leader` for the
   * leader it follows, else `follower` (voters) or `learner`; `none` for a
   * mesh member outside the Raft configuration.
   */
  readonly role: string
  readonly state: 'self' | Member['state'] | 'unknown'
  readonly voter: boolean
  readonly learner: boolean
  readonly lastSeen: number | null
  /** Why a `failed` member failed, as this node saw it (a closed connection, a silent peer); null otherwise. */
  readonly failure: string | null
  /** Leader's view only: the member's replicated index, and how far it lags. */
  readonly matchIndex: number | null
  readonly lag: number | null
  readonly meta: Readonly<Record<string, string>>
}

/** A named cache as this node holds it: its size, hit rate and gossip traffic. */
export interface CacheStatus {
  readonly name: string
  readonly mode: CacheMode
  readonly entries: number
  readonly hits: number
  readonly misses: number
  /** Writes, deletes and invalidations this node published. */
  readonly updatesSent: number
  /** Other nodes' updates this node took in from the gossip. */
  readonly updatesReceived: number
  /** Other nodes' writes taken in by anti-entropy instead (replicated mode). */
  readonly repaired: number
  /** Anti-entropy exchanges with other nodes (replicated mode), and those that failed. */
  readonly syncs: number
  readonly syncFailures: number
  /** Breaks in another node's sequence of updates. */
  readonly gaps: number
  /** Times this node dropped every local copy (invalidation mode, after a cut or an unrepairable gap). */
  readonly droppedAll: number
}

export interface ClusterStatus {
  readonly id: string
  /** Wall-clock ms when this snapshot was taken: read `lastSeen`, `grantedAt` and `panic.at` against it. */
  readonly time: number
  readonly members: MemberStatus[]
  readonly raft: {
    readonly role: string
    readonly term: number
    readonly leader: string | null
    readonly commitIndex: number
    readonly appliedIndex: number
    readonly lastIndex: number
    readonly voters: readonly string[]
    readonly learners: readonly string[]
    /** Voters needed for a decision, and how many may fail without losing that. */
    readonly quorum: number
    readonly failureTolerance: number
  }
  readonly session: { readonly id: string | null, readonly leaseRemainingMs: number | null }
  readonly sessions: Array<{ id: string, node: string, ttlMs: number, openedAt: number }>
  readonly locks: Array<{ kind: string, name: string, holder: { node: string | null, session: string, fence: string, grantedAt: number } | null, waiters: number }>
  readonly queues: QueueStatus[]
  readonly schedules: ScheduleStatus[]
  /** The caches this node has open, by name. */
  readonly caches: CacheStatus[]
  /** This node's share of `cluster.events`: published, received, repaired, lost. */
  readonly events: EventStats
  readonly panic: (PanicInfo & { at: number }) | null
}

export interface StatusInput {
  readonly id: string
  readonly raft: RaftStatus
  readonly members: readonly Member[]
  readonly state: CoordinationState
  readonly session: string | null
  readonly leaseDeadline: number
  readonly now: number
  readonly wallNow: number
  readonly caches: ReadonlyArray<{ readonly name: string, readonly mode: CacheMode, readonly stats: CacheStats }>
  readonly events: EventStats
  readonly panic: (PanicInfo & { at: number }) | null
}

export function buildStatus (i: StatusInput): ClusterStatus {
  const { raft, state } = i
  const byId = new Map(i.members.map(m => [m.nodeId, m]))
  const ids = [...new Set([i.id, ...raft.config.voters, ...raft.config.learners, ...i.members.map(m => m.nodeId)])].sort()
  const quorum = Math.floor(raft.config.voters.length / 2) + 1
  return {
    id: i.id,
    time: i.wallNow,
    members: ids.map(id => {
      const m = byId.get(id)
      const match = id === i.id ? raft.lastIndex : raft.progress[id]?.match ?? null
      return {
        id,
        role: roleOf(id, i.id, raft),
        state: id === i.id ? 'self' : m?.state ?? 'unknown',
        voter: raft.config.voters.includes(id),
        learner: raft.config.learners.includes(id),
        lastSeen: m?.lastSeen ?? null,
        failure: m?.failure ?? null,
        matchIndex: raft.role === 'leader' ? match : null,
        lag: raft.role === 'leader' && match !== null ? Math.max(0, raft.lastIndex - match) : null,
        meta: m?.meta ?? {}
      }
    }),
    raft: {
      role: raft.role,
      term: raft.term,
      leader: raft.leader,
      commitIndex: raft.commitIndex,
      appliedIndex: raft.appliedIndex,
      lastIndex: raft.lastIndex,
      voters: raft.config.voters,
      learners: raft.config.learners,
      quorum,
      failureTolerance: Math.max(0, raft.config.voters.length - quorum)
    },
    session: { id: i.session, leaseRemainingMs: i.session === null ? null : Math.max(0, Math.round(i.leaseDeadline - i.now)) },
    sessions: state.sessionList().map(s => ({ id: s.id, node: s.node, ttlMs: s.ttlMs, openedAt: s.openedAt })),
    locks: state.lockList().map(l => ({
      kind: l.kind,
      name: l.name,
      holder: l.holder === null ? null : { node: state.session(l.holder.session)?.node ?? null, session: l.holder.session, fence: String(l.holder.fence), grantedAt: l.holder.grantedAt },
      waiters: l.waiters.length
    })),
    queues: queueStatus(state, i.wallNow),
    schedules: scheduleStatus(state),
    caches: [...i.caches].sort((a, b) => a.name.localeCompare(b.name)).map(({ name, mode, stats: c }) => ({
      name,
      mode,
      entries: c.entries,
      hits: c.hits,
      misses: c.misses,
      updatesSent: c.channel.published,
      updatesReceived: c.updatesReceived,
      repaired: c.repaired,
      syncs: c.syncs,
      syncFailures: c.syncFailures,
      gaps: c.channel.gaps,
      droppedAll: c.droppedAll
    })),
    events: i.events,
    panic: i.panic
  }
}

function roleOf (id: string, self: string, raft: RaftStatus): string {
  if (id === self) return raft.role
  if (id === raft.leader) return 'leader'
  if (raft.config.voters.includes(id)) return 'follower'
  return raft.config.learners.includes(id) ? 'learner' : 'none'
}
