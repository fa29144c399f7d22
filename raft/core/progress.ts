/**
 * The leader's view of one follower (etcd's tracker.Progress):
 * - probe: the leader does not know where the follower's log matches, so it
 *   sends one Append at a time and waits;
 * - replicate: the follower is known to match, so Appends are pipelined up to
 *   a window of in-flight messages;
 * - snapshot: the follower needs entries the leader compacted away and is
 *   receiving a snapshot.
 */
import { assertNever } from '../assert-never.js'

export type ProgressState = 'probe' | 'replicate' | 'snapshot'

export class Progress {
  /** Highest index known to be replicated on the follower. */
  match = 0
  /** Next index to send. */
  next: number
  state: ProgressState = 'probe'
  /** In probe state: an Append is outstanding; cleared by any reply or heartbeat reply. */
  probeSent = false
  /** Last index of each in-flight Append, oldest first. */
  private readonly inflight: number[] = []
  /** Leader tick of the last message sent that the follower answers (Append, Snapshot, Heartbeat). */
  lastSentTick = 0
  /** Set on any message from the follower; read and cleared by check-quorum. */
  recentActive = false
  /** Highest heartbeat round the follower answered (a quiesced leader waits for the quiesce round's). */
  heartbeatAcked = 0
  /** The transport reported the follower lost, and it has not answered since: the leader must not quiesce. */
  unreachable = false
  /** In snapshot state: the index of the snapshot being sent and the next byte to send. */
  snapshotIndex = 0
  snapshotOffset = 0
  readonly isLearner: boolean

  constructor (next: number, isLearner: boolean, private readonly maxInflight: number) {
    this.next = next
    this.isLearner = isLearner
  }

  /** True when the leader must not send another Append right now. */
  isPaused (): boolean {
    switch (this.state) {
      case 'probe': return this.probeSent
      case 'replicate': return this.inflight.length >= this.maxInflight
      case 'snapshot': return true
      default: return assertNever(this.state, 'progress state')
    }
  }

  inflightCount (): number {
    return this.inflight.length
  }

  becomeProbe (): void {
    // After a snapshot the follower has at least the snapshot's index.
    if (this.state === 'snapshot') {
      this.next = Math.max(this.match + 1, this.snapshotIndex + 1)
    } else {
      this.next = this.match + 1
    }
    this.reset('probe')
  }

  becomeReplicate (): void {
    this.next = this.match + 1
    this.reset('replicate')
  }

  becomeSnapshot (index: number): void {
    this.reset('snapshot')
    this.snapshotIndex = index
    this.snapshotOffset = 0
  }

  private reset (state: ProgressState): void {
    this.state = state
    this.probeSent = false
    this.snapshotIndex = 0
    this.snapshotOffset = 0
    this.inflight.length = 0
  }

  /** Records that an Append ending at `last` was sent. */
  sentEntries (last: number, count: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = last + 1
        this.inflight.push(last)
      }
    } else if (this.state === 'probe') {
      this.probeSent = true
    }
  }

  /**
   * A heartbeat answer proves the follower is alive but not that our
   * Appends arrived: open one slot so a lost Append cannot stall the
   * window forever (etcd's freeFirstOne).
   */
  freeFirstInflight (): void {
    if (this.inflight.length >= this.maxInflight) this.inflight.shift()
  }

  /** A successful reply: returns false when it told us nothing new. */
  maybeUpdate (index: number): boolean {
    let updated = false
    if (index > this.match) {
      this.match = index
      updated = true
      this.probeSent = false
    }
    this.next = Math.max(this.next, index + 1)
    while (this.inflight.length > 0 && this.inflight[0] <= index) this.inflight.shift()
    return updated
  }

  /**
   * A rejection of the Append whose prevIndex was `rejected`. Returns false
   * when the rejection is stale (it answers an Append sent before we moved).
   */
  maybeDecrement (rejected: number, next: number): boolean {
    if (this.state === 'replicate') {
      // Rejections of entries already known to match are stale.
      if (rejected <= this.match) return false
      this.reset('probe')
      this.next = Math.max(this.match + 1, Math.min(rejected, next))
      return true
    }
    // In probe state only the reply to the outstanding probe counts.
    if (this.next - 1 !== rejected) return false
    this.next = Math.max(this.match + 1, Math.min(rejected, next))
    this.probeSent = false
    return true
  }
}
