/**
 * Quiescence of an idle group (as CockroachDB quiesces idle ranges): a
 * leader with nothing to do stops its periodic heartbeats, and its
 * followers stop their election timers. It only changes timers, never what
 * a message means, so election safety, log matching, leader completeness
 * and read linearizability rest on the same rules as without it.
 *
 * The leader quiesces when, for `quiesceAfterTicks` ticks in a row, it is
 * idle (see `leaderIdle`): it has committed an entry of its term, every
 * entry is committed, durable here and acknowledged by every member, no
 * proposal, read, membership change, transfer or snapshot is under way, and
 * the transport has reported no member lost since that member last
 * answered. It then sends a heartbeat marked `quiesce` (carrying commit =
 * last index) and sends it again each heartbeat interval to members that
 * have not answered it, so a lost one does not leave a follower's timer
 * running towards an election. Heartbeats of ReadIndex rounds keep the mark,
 * so the session keep-alives' reads confirm leadership by a quorum round as
 * before without waking anyone.
 *
 * A follower that gets a quiesce heartbeat from its leader and whose log
 * ends at that heartbeat's commit stops advancing its election timer. It
 * still counts its leader as heard (§4.2.3: it refuses disruptive votes) for
 * as long as it is quiesced: its liveness now rests on the transport, which
 * reports a crashed peer at once and a silent one after its keep-alive
 * timeout (`reportUnreachable`). Any other message from the leader, the
 * transport's report that the leader is lost, a restart or a role change
 * wakes it; so does a (pre-)vote request from its own leader, which was
 * deposed while this follower missed its wake-up heartbeat: refusing the
 * old leader, whose log holds ours, could leave nobody able to win.
 *
 * The leader wakes on a proposal (its own no-op, membership changes), a
 * transfer, the transport's report of any member lost, and any message from
 * a member other than a heartbeat answer or a ReadIndex request: a follower
 * that woke on its own (a restart, a lost-leader report) campaigns, and its
 * (pre-)vote request wakes the leader even though the leader refuses it. A
 * waking leader first sends an unmarked heartbeat to everyone (before it
 * steps down, if the message that woke it carried a higher term), so the
 * other followers restart their timers: otherwise, without pre-vote, a
 * candidate could depose the leader while the rest, still quiesced, refuse
 * to vote for anyone, and a group of five could never elect. While
 * quiesced, check-quorum is suspended (no answers are expected); on waking
 * it restarts with a full election timeout, so a leader cut off while
 * quiesced steps down one election timeout after the transport reports its
 * peers lost.
 *
 * Lease reads are refused together with quiescence: they rely on a follower
 * never acting on the transport's report while its leader's lease runs, and
 * a quiesced follower has nothing else to wake it when its leader dies.
 */
import type { Progress } from './progress.js'
import type { RaftCore } from './core.js'
import type { NodeId } from '../types.js'

export class Quiescence {
  /** Consecutive ticks the leader was idle. */
  private idleTicks = 0
  /** Heartbeats are stopped (the quiesce round was sent). */
  quiesced = false
  /** The heartbeat round that quiesced the group: members that answered it are quiet. */
  round = 0

  /** Counts one leader tick; true when the leader has been idle long enough to quiesce. */
  tick (idle: boolean, afterTicks: number): boolean {
    if (afterTicks <= 0 || this.quiesced) return false
    this.idleTicks = idle ? this.idleTicks + 1 : 0
    return this.idleTicks >= afterTicks
  }

  /** Something happened: the quiet period starts over. True when the leader was quiesced. */
  wake (): boolean {
    const was = this.quiesced
    this.idleTicks = 0
    this.quiesced = false
    this.round = 0
    return was
  }
}

/** The leader's part of the quiescence condition that does not depend on time. */
export function leaderIdle (r: RaftCore, progress: ReadonlyMap<NodeId, Progress>, busy: boolean): boolean {
  const log = r.log
  const last = log.lastIndex()
  if (busy || log.committed !== last || log.stable !== last || log.term(last) !== r.term) return false
  if (r.pendingConfigIndex() !== 0 || r.readsWaitingForCommit.length > 0 || r.rounds.hasPending()) return false
  for (const pr of progress.values()) {
    if (pr.state !== 'replicate' || pr.match !== last || pr.inflightCount() > 0 || pr.unreachable) return false
  }
  return true
}
