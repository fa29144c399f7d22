/**
 * Leadership confirmation by heartbeat rounds, for ReadIndex (thesis §6.4)
 * and lease reads (§6.4.1). Every heartbeat broadcast opens a numbered
 * round; a follower's answer acknowledges that round and all before it.
 * - ReadIndex: a read records the commit index and the round that will
 *   confirm it (the next one); it is served once a majority has answered
 *   that round.
 * - Lease: a follower that got a heartbeat refuses to vote for
 *   electionTick of its ticks, so once a majority answered a round sent at
 *   tick S no other leader can exist before S + electionTick - 1 leader ticks
 *   (one tick is lost to phase; clocks are assumed to run at the same rate).
 */
import { majority } from './quorum.js'
import type { NodeId } from '../types.js'

export interface PendingRead {
  readonly round: number
  readonly ctx: string
  /** Node that asked: the leader itself or a follower. */
  readonly from: NodeId
  readonly index: number
}

export class HeartbeatRounds {
  private round = 0
  /** Leader tick at which each round not yet confirmed by a quorum was sent. */
  private readonly sentAt = new Map<number, number>()
  private readonly pending: PendingRead[] = []
  /** Highest round each peer has answered. */
  private readonly acked = new Map<NodeId, number>()

  current (): number {
    return this.round
  }

  /** Opens a new round sent at leader tick `now`. */
  next (now: number): number {
    this.round++
    this.sentAt.set(this.round, now)
    return this.round
  }

  /** True while a read waits for its round. */
  hasPending (): boolean {
    return this.pending.length > 0
  }

  /** Queues a read at `index`, confirmed by the next round. */
  addRead (ctx: string, from: NodeId, index: number): void {
    this.pending.push({ round: this.round + 1, ctx, from, index })
  }

  /** The highest round a majority of voters (counting ourselves) has answered, or 0. */
  private quorumRound (self: NodeId, voters: readonly NodeId[]): number {
    if (voters.length === 0) return 0
    const rounds = voters.map(id => id === self ? this.round : (this.acked.get(id) ?? 0)).sort((a, b) => b - a)
    return rounds[majority(voters.length) - 1]
  }

  /** Records an answer and returns the reads a majority has now confirmed. */
  ack (self: NodeId, peer: NodeId, round: number, voters: readonly NodeId[]): PendingRead[] {
    if (round > (this.acked.get(peer) ?? 0) && round <= this.round) this.acked.set(peer, round)
    const q = this.quorumRound(self, voters)
    const done: PendingRead[] = []
    while (this.pending.length > 0 && this.pending[0].round <= q) done.push(this.pending.shift() as PendingRead)
    return done
  }

  /** Leader tick before which no other leader can have been elected; -Infinity without a confirmed round. */
  leaseUntil (self: NodeId, voters: readonly NodeId[], electionTick: number): number {
    const q = this.quorumRound(self, voters)
    for (const r of this.sentAt.keys()) if (r < q) this.sentAt.delete(r)
    const sent = this.sentAt.get(q)
    return q === 0 || sent === undefined ? -Infinity : sent + electionTick - 1
  }

  /** Forgets everything (leadership lost); returns the reads that were waiting. */
  drain (): PendingRead[] {
    this.acked.clear()
    this.sentAt.clear()
    return this.pending.splice(0)
  }
}
