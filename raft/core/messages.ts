/**
 * Messages exchanged between Raft peers. A discriminated union on `type`,
 * handled by exhaustive switches.
 */
import type { Entry, NodeId, SnapshotMeta } from '../types.js'

interface Envelope {
  readonly from: NodeId
  readonly to: NodeId
  /** Sender's term; for PreVote the term the sender would campaign in. */
  readonly term: number
}

/** Request for a (pre-)vote (thesis §3.4, §9.6). */
export interface VoteRequest extends Envelope {
  readonly type: 'PreVote' | 'Vote'
  readonly lastIndex: number
  readonly lastTerm: number
  /** Set by leadership transfer: voters ignore their leader lease (§3.10). */
  readonly force: boolean
}

export interface VoteResponse extends Envelope {
  readonly type: 'PreVoteResp' | 'VoteResp'
  readonly reject: boolean
}

/** AppendEntries (§3.5). */
export interface AppendRequest extends Envelope {
  readonly type: 'Append'
  readonly prevIndex: number
  readonly prevTerm: number
  readonly entries: readonly Entry[]
  readonly commit: number
}

/**
 * Reply to Append. On success `index` is the last index now known to match.
 * On rejection `index` is the rejected prevIndex and the hint says where the
 * follower's log diverges (conflict term/index, §5.3 optimisation).
 */
export interface AppendResponse extends Envelope {
  readonly type: 'AppendResp'
  readonly reject: boolean
  readonly index: number
  readonly hintIndex: number
  readonly hintTerm: number
}

/** Leader liveness, commit propagation and ReadIndex confirmation (§6.4). */
export interface Heartbeat extends Envelope {
  readonly type: 'Heartbeat'
  readonly commit: number
  /** Highest ReadIndex round this heartbeat confirms; 0 for none. */
  readonly readSeq: number
  /**
   * The leader is idle and sends no periodic heartbeats until something
   * happens (see quiescence.ts): a follower whose log ends at `commit` may
   * stop its election timer. False wakes a quiesced follower.
   */
  readonly quiesce: boolean
}

/**
 * The leader's commit index for a follower that already has every entry up
 * to it (commit = min(match, committed)), sent when nothing else is on its
 * way to that follower. It asks for no reply: the leader learns nothing from
 * one, and answering every commit would add a message to each write.
 */
export interface CommitNotice extends Envelope {
  readonly type: 'Commit'
  readonly commit: number
}

export interface HeartbeatResponse extends Envelope {
  readonly type: 'HeartbeatResp'
  readonly readSeq: number
}

/** One chunk of an InstallSnapshot transfer (§5.3 of the thesis). */
export interface SnapshotChunk extends Envelope {
  readonly type: 'Snapshot'
  readonly meta: SnapshotMeta
  readonly offset: number
  readonly total: number
  readonly chunk: Uint8Array
}

/** Acknowledges snapshot bytes received so far: `offset` is the next byte wanted. */
export interface SnapshotResponse extends Envelope {
  readonly type: 'SnapshotResp'
  readonly snapshotIndex: number
  readonly offset: number
}

/** A follower asks the leader for a read index on behalf of its client. */
export interface ReadIndexRequest extends Envelope {
  readonly type: 'ReadIndex'
  readonly ctx: string
}

export interface ReadIndexResponse extends Envelope {
  readonly type: 'ReadIndexResp'
  readonly ctx: string
  /** The index to wait for before reading; -1 when the leader refused. */
  readonly index: number
}

/** Leadership transfer: the target campaigns at once (§3.10). */
export interface TimeoutNow extends Envelope {
  readonly type: 'TimeoutNow'
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | Heartbeat
  | HeartbeatResponse
  | CommitNotice
  | SnapshotChunk
  | SnapshotResponse
  | ReadIndexRequest
  | ReadIndexResponse
  | TimeoutNow

export type MessageType = Message['type']

/**
 * Message types a leader may send before its own entries of the same Ready
 * are durable (thesis §10.2.1): they carry no promise about the leader's own
 * disk. Votes and acknowledgements must still wait for the fsync.
 */
export const leaderEarlyTypes: ReadonlySet<MessageType> = new Set<MessageType>(['Append', 'Heartbeat', 'Commit', 'Snapshot', 'TimeoutNow', 'ReadIndexResp'])

/** Splits a leader's Ready messages into those it may send now and those that wait for the fsync. */
export function splitLeaderMessages (messages: readonly Message[]): { early: Message[], late: Message[] } {
  const early: Message[] = []
  const late: Message[] = []
  for (const m of messages) (leaderEarlyTypes.has(m.type) ? early : late).push(m)
  return { early, late }
}
