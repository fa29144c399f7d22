/**
 * The options of a RaftCore: what a caller may set, their defaults, and the
 * combinations refused before a node starts.
 */
import { InvalidArgumentError } from '../errors.js'
import type { Entry, HardState, NodeId, Snapshot } from '../types.js'

/** What storage recovered; the shape of LogStore's RecoveredState. */
export interface InitialState {
  readonly hardState: HardState
  readonly snapshot: Snapshot | null
  readonly entries: readonly Entry[]
}

export interface RaftOptions {
  readonly id: NodeId
  /** Seeded source of uniform numbers in [0, 1) for election jitter. */
  readonly random: () => number
  /** Ticks without a leader before campaigning (randomised in [n, 2n)). Default 10. */
  readonly electionTick?: number
  /** Ticks between leader heartbeats. Default 1. */
  readonly heartbeatTick?: number
  /** Pre-vote (§9.6), default true. */
  readonly preVote?: boolean
  /** Check-quorum (§6.2), default true. */
  readonly checkQuorum?: boolean
  /** Serve reads from the leader lease instead of a heartbeat round; requires checkQuorum. */
  readonly leaseRead?: boolean
  /**
   * Ticks an idle leader waits before it stops heartbeats and its followers
   * stop their election timers (quiescence.ts); 0 (the default) never. A
   * quiesced follower relies on reportUnreachable to learn that its leader
   * died, so turn it on only with a transport that reports lost peers.
   * Not with leaseRead.
   */
  readonly quiesceAfterTicks?: number
  readonly maxInflight?: number
  readonly maxEntriesPerMsg?: number
  readonly maxBytesPerMsg?: number
  readonly snapshotChunkBytes?: number
  /** Durable state from storage; absent for a fresh node. */
  readonly state?: InitialState
  /** Voters of a brand-new cluster; used only when the log is empty. */
  readonly bootstrap?: readonly NodeId[]
}

/** The options with every default filled in; throws InvalidArgumentError for a combination that cannot work. */
export function resolveOptions (options: RaftOptions): Required<Omit<RaftOptions, 'state' | 'bootstrap'>> {
const opts = {
    id: options.id,
    random: options.random,
    electionTick: options.electionTick ?? 10,
    heartbeatTick: options.heartbeatTick ?? 1,
    preVote: options.preVote ?? true,
    checkQuorum: options.checkQuorum ?? true,
    leaseRead: options.leaseRead ?? false,
    quiesceAfterTicks: options.quiesceAfterTicks ?? 0,
    maxInflight: options.maxInflight ?? 256,
    maxEntriesPerMsg: options.maxEntriesPerMsg ?? 512,
    maxBytesPerMsg: options.maxBytesPerMsg ?? 1024 * 1024,
    snapshotChunkBytes: options.snapshotChunkBytes ?? 1024 * 1024
  }
  if (opts.leaseRead && !opts.checkQuorum) {
    throw new InvalidArgumentError('leaseRead requires checkQuorum: without it a deposed leader could serve stale reads')
  }
  if (opts.leaseRead && opts.quiesceAfterTicks > 0) {
    throw new InvalidArgumentError('leaseRead cannot be combined with quiesceAfterTicks: a quiesced follower learns of its leader\'s death only from reportUnreachable, which a lease must ignore')
  }
  if (!Number.isInteger(opts.quiesceAfterTicks) || opts.quiesceAfterTicks < 0) {
    throw new InvalidArgumentError('quiesceAfterTicks must be a non-negative integer')
  }
  if (opts.heartbeatTick >= opts.electionTick) {
    throw new InvalidArgumentError('heartbeatTick must be smaller than electionTick')
  }
  return opts
}
