/**
 * Follower behaviour: accept the leader's log (§3.5), learn its commit
 * index, install its snapshots, and campaign at once on TimeoutNow.
 */
import type { RaftCore } from './core.js'
import type { AppendRequest, Message, SnapshotChunk } from './messages.js'
import type { Snapshot } from '../types.js'

export function stepFollower (r: RaftCore, m: Message): void {
  if (m.type === 'Append' || m.type === 'Heartbeat' || m.type === 'Commit' || m.type === 'Snapshot') {
    // Only the leader of our term sends these.
    r.heardFromLeader(m.from)
    // Only a marked heartbeat whose commit ends our log keeps the timer still (quiescence.ts).
    r.quiesced = false
  }
  switch (m.type) {
    case 'Append':
      handleAppend(r, m)
      return
    case 'Heartbeat':
      r.log.commitTo(m.commit)
      r.quiesced = m.quiesce && r.log.lastIndex() === m.commit && r.log.committed === m.commit
      r.send({ type: 'HeartbeatResp', from: r.id, to: m.from, term: r.term, readSeq: m.readSeq })
      return
    case 'Commit':
      r.log.commitTo(m.commit)
      return
    case 'Snapshot':
      handleSnapshotChunk(r, m)
      return
    case 'TimeoutNow':
      r.campaign(true)
      return
    default:
      stepReads(r, m)
  }
}

/** ReadIndex traffic on a node that is not the leader. */
export function stepReads (r: RaftCore, m: Message): void {
  if (m.type === 'ReadIndex') {
    // Only the leader can confirm a read; the asker retries there.
    r.answerRead(m.ctx, m.from, -1)
  } else if (m.type === 'ReadIndexResp') {
    r.readStates.push({ ctx: m.ctx, index: m.index })
  }
}

function handleAppend (r: RaftCore, m: AppendRequest): void {
  const reply = (reject: boolean, index: number, hintIndex = 0, hintTerm = 0): void => {
    r.send({ type: 'AppendResp', from: r.id, to: m.from, term: r.term, reject, index, hintIndex, hintTerm })
  }
  if (m.prevIndex < r.log.committed) {
    // Everything up to our commit index matches any leader's log (leader completeness).
    reply(false, r.log.committed)
    return
  }
  if (!r.log.matchTerm(m.prevIndex, m.prevTerm)) {
    if (m.prevIndex > r.log.lastIndex()) {
      reply(true, m.prevIndex, r.log.lastIndex() + 1, 0)
    } else {
      // Name the conflicting term and where it starts so the leader skips it in one round trip.
      reply(true, m.prevIndex, r.log.firstIndexOfTerm(m.prevIndex), r.log.term(m.prevIndex) as number)
    }
    return
  }
  const { truncated, appended } = r.log.append(m.entries)
  // The truncated entries were replaced by `appended`, so the cut was just before its first.
  if (truncated) r.rewindConfig(appended[0].index - 1)
  for (const e of appended) r.noteAppended(e)
  const lastNew = m.prevIndex + m.entries.length
  r.log.commitTo(Math.min(m.commit, lastNew))
  reply(false, lastNew)
}

function handleSnapshotChunk (r: RaftCore, m: SnapshotChunk): void {
  if (m.meta.index <= r.log.committed) {
    // Already have it: tell the leader where we are so it resumes appends.
    r.snapshotReceiver.reset()
    r.send({ type: 'AppendResp', from: r.id, to: m.from, term: r.term, reject: false, index: r.log.committed, hintIndex: 0, hintTerm: 0 })
    return
  }
  const outcome = r.snapshotReceiver.receive(m)
  if ('next' in outcome) {
    r.send({ type: 'SnapshotResp', from: r.id, to: m.from, term: r.term, snapshotIndex: m.meta.index, offset: outcome.next })
    return
  }
  restoreSnapshot(r, outcome.done)
  // The log matches the leader's through the snapshot, and no further: a
  // suffix kept behind it (see restoreSnapshot) was never checked (§5.3).
  r.send({ type: 'AppendResp', from: r.id, to: m.from, term: r.term, reject: false, index: m.meta.index, hintIndex: 0, hintTerm: 0 })
}

function restoreSnapshot (r: RaftCore, s: Snapshot): void {
  if (r.log.matchTerm(s.meta.index, s.meta.term)) {
    // Our log already holds the snapshot's last entry: keep the suffix, just commit.
    r.log.commitTo(s.meta.index)
    return
  }
  r.log.restore(s.meta)
  r.configs.reset(s.meta.index, s.meta.config)
  r.setConfig(s.meta.config)
  r.snapshot = s
  r.pendingSnapshot = s
}
