/**
 * ReadIndex (thesis §6.4): the leader records its commit index for a read,
 * then confirms it is still the leader by hearing from a majority in a
 * heartbeat round numbered after the read arrived. Rounds are sequence
 * numbers, so one heartbeat answer confirms every read queued before it.
 */
import { hasQuorum } from './quorum.js'
import type { NodeId } from './types.js'

export interface PendingRead {
  readonly seq: number
  readonly ctx: string
  /** Node that asked: the leader itself or a follower. */
  readonly from: NodeId
  readonly index: number
}

export class ReadOnlyQueue {
  private seq = 0
  private readonly pending: PendingRead[] = []
  /** Highest round each peer has answered. */
  private readonly acked = new Map<NodeId, number>()

  /** Queues a read at `index` and returns the round a heartbeat must carry. */
  add (ctx: string, from: NodeId, index: number): number {
    this.seq++
    this.pending.push({ seq: this.seq, ctx, from, index })
    return this.seq
  }

  lastSeq (): number {
    return this.seq
  }

  size (): number {
    return this.pending.length
  }

  /** Records a heartbeat answer and returns the reads a majority has now confirmed. */
  ack (self: NodeId, peer: NodeId, seq: number, voters: readonly NodeId[]): PendingRead[] {
    if (seq > (this.acked.get(peer) ?? 0)) this.acked.set(peer, seq)
    const done: PendingRead[] = []
    while (this.pending.length > 0) {
      const head = this.pending[0]
      const confirmed = hasQuorum(voters, id => id === self || (this.acked.get(id) ?? 0) >= head.seq)
      if (!confirmed) break
      done.push(head)
      this.pending.shift()
    }
    return done
  }

  /** Empties the queue, e.g. when leadership is lost; returns what was waiting. */
  drain (): PendingRead[] {
    this.acked.clear()
    return this.pending.splice(0)
  }
}
