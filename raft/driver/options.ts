/** What a RaftNode is started with, and the checks RaftNode.start makes of it. */
import type { Clock } from './clock.js'
import { InvalidArgumentError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { LogStore } from '../storage/log-store.js'
import type { StateMachine } from './state-machine.js'
import type { Transport } from './transport.js'
import type { NodeId } from '../types.js'

export interface RaftNodeOptions<R> {
  readonly id: NodeId
  readonly store: LogStore
  readonly transport: Transport
  readonly stateMachine: StateMachine<R>
  /** Voters of a brand-new cluster (same list on every bootstrap node). */
  readonly bootstrap?: readonly NodeId[]
  /** Milliseconds per tick. Default 50. */
  readonly tickMs?: number
  /** Ticks before an election. Default 10. */
  readonly electionTick?: number
  readonly heartbeatTick?: number
  /** Take a snapshot after this many entries applied since the last one. Default 10000. */
  readonly snapshotEvery?: number
  /**
   * Also wait until the entries applied since the last snapshot hold this
   * many times that snapshot's bytes. Encoding and saving a snapshot costs
   * its size, so a large state (a queue with a backlog) is otherwise
   * re-encoded every `snapshotEvery` entries, stalling every node at once;
   * this way snapshots cost at most this many bytes per byte of log, and
   * the log a restart replays stays near this many snapshots in size.
   * Default 1; 0 snapshots by count alone.
   */
  readonly snapshotLogRatio?: number
  readonly leaseRead?: boolean
  /** Ticks of idleness before the leader quiesces the group (see RaftOptions). Default 0: never. */
  readonly quiesceAfterTicks?: number
  readonly snapshotChunkBytes?: number
  /** Pre-vote (§9.6). Default true. */
  readonly preVote?: boolean
  /** Check-quorum (§6.2). Default true. */
  readonly checkQuorum?: boolean
  /** Appends in flight per follower. Default 256. */
  readonly maxInflight?: number
  /** Entries per Append. Default 512. */
  readonly maxEntriesPerMsg?: number
  /** Bytes of entries per Append (at least one entry is always sent). Default 1 MiB. */
  readonly maxBytesPerMsg?: number
  /** Timers; the process's own by default (a simulation passes simulated time). */
  readonly clock?: Clock
  /** Uniform numbers in [0, 1) for election jitter; crypto.randomInt by default. */
  readonly random?: () => number
  /** A pino-compatible logger; silent by default. Lines carry `{ node: id }`. */
  readonly logger?: Logger
}

/** Throws InvalidArgumentError for a count that is not a positive integer or a ratio that is not a finite number >= 0. */
export function validateOptions<R> (opts: RaftNodeOptions<R>): void {
  for (const k of ['tickMs', 'electionTick', 'heartbeatTick', 'snapshotEvery', 'snapshotChunkBytes', 'maxInflight', 'maxEntriesPerMsg', 'maxBytesPerMsg'] as const) {
    const v = opts[k]
    if (v !== undefined && (!Number.isInteger(v) || v <= 0)) throw new InvalidArgumentError(`${k} must be a positive integer, got ${v}`)
  }
  const ratio = opts.snapshotLogRatio
  if (ratio !== undefined && !(Number.isFinite(ratio) && ratio >= 0)) throw new InvalidArgumentError(`snapshotLogRatio must be a finite number >= 0, got ${ratio}`)
}
