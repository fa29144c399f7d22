/**
 * Leader behaviour: replication with per-follower flow control, commit by
 * majority of the current term, heartbeats, check-quorum, ReadIndex,
 * snapshot transfer and leadership transfer. Lives while its node leads.
 */
import type { RaftCore } from './core.js'
import type { AppendResponse, Message, SnapshotResponse } from './messages.js'
import { Progress } from './progress.js'
import { committedIndex, hasQuorum } from './quorum.js'
import { leaderIdle, Quiescence } from './quiescence.js'
import type { Entry, EntryType, NodeId } from '../types.js'

export class Leader {
  readonly progress = new Map<NodeId, Progress>()
  transferee: NodeId | null = null
  private heartbeatElapsed = 0
  /** New entries or a new commit index wait to be sent at the next flush. */
  private pendingAppend = false
  private pendingCommit = false
  private pendingReadRound = false
  /** Ticks since this node became leader: the clock of heartbeat rounds and the lease. */
  private ticks = 0
  /** Stopped heartbeats of an idle leader (quiescence.ts). */
  readonly quiet = new Quiescence()

  constructor (private readonly r: RaftCore) {
    this.syncProgress()
  }

  /** Keeps one Progress per member other than ourselves (§4.1: config on append). */
  syncProgress (): void {
    const { voters, learners } = this.r.config
    const members = new Set([...voters, ...learners])
    for (const id of this.progress.keys()) if (!members.has(id)) this.progress.delete(id)
    for (const id of members) {
      if (id === this.r.id) continue
      const learner = learners.includes(id)
      const pr = this.progress.get(id)
      if (pr === undefined || pr.isLearner !== learner) {
        const fresh = new Progress(this.r.log.lastIndex() + 1, learner, this.r.opts.maxInflight)
        if (pr !== undefined) fresh.match = pr.match
        this.progress.set(id, fresh)
      }
    }
    if (this.transferee !== null && !voters.includes(this.transferee)) this.transferee = null
  }

  private match (id: NodeId): number {
    if (id === this.r.id) return this.r.log.stable
    return this.progress.get(id)?.match ?? 0
  }

  appendEntries (parts: ReadonlyArray<{ type: EntryType, data: Uint8Array }>): Entry {
    const log = this.r.log
    const entries: Entry[] = parts.map((p, i) => ({ index: log.lastIndex() + 1 + i, term: this.r.term, type: p.type, data: p.data }))
    log.append(entries)
    for (const e of entries) this.r.noteAppended(e)
    this.pendingAppend = true
    this.wake()
    return entries[entries.length - 1]
  }

  /** Our own entries became durable: they now count toward the majority. */
  onSelfPersisted (): void {
    this.maybeCommit()
  }

  private maybeCommit (): void {
    const r = this.r
    const idx = committedIndex(r.config.voters, id => this.match(id))
    // §3.6.2: only entries of the current term are committed by counting replicas.
    if (idx <= r.log.committed || r.log.term(idx) !== r.term) return
    r.log.commitTo(idx)
    this.pendingCommit = true
    for (const w of r.readsWaitingForCommit.splice(0)) this.handleRead(w.ctx, w.from)
    if (!r.config.voters.includes(r.id) && r.pendingConfigIndex() === 0) {
      // Our own removal is committed: stop leading so the rest elect a leader.
      r.becomeFollower(r.term, null)
    }
  }

  /** Sends what accumulated since the last Ready: one round, however many proposals. */
  flush (): void {
    const r = this.r
    if (this.pendingAppend || this.pendingCommit) {
      const commitOnly = this.pendingCommit
      this.pendingAppend = false
      this.pendingCommit = false
      for (const [id, pr] of this.progress) {
        // A new commit index rides on the next Append. A follower with nothing
        // in flight gets it at once (else under load every commit would double
        // the messages; the next Append or heartbeat tells the others): as a
        // Commit notice if it is known to match, else as an Append, whose answer
        // a probing leader needs.
        const notify = commitOnly && pr.inflightCount() === 0
        if (notify && pr.state === 'replicate' && pr.next > r.log.lastIndex()) {
          r.send({ type: 'Commit', from: r.id, to: id, term: r.term, commit: Math.min(pr.match, r.log.committed) })
        } else {
          this.sendAppend(id, notify)
        }
      }
    }
    if (this.pendingReadRound) {
      this.pendingReadRound = false
      this.broadcastHeartbeat()
    }
  }

  private sendAppend (to: NodeId, sendIfEmpty: boolean): void {
    const r = this.r
    const pr = this.progress.get(to)
    if (pr === undefined) return
    let first = true
    while (!pr.isPaused()) {
      const prevIndex = pr.next - 1
      const prevTerm = r.log.term(prevIndex)
      if (prevTerm === undefined) {
        this.startSnapshot(to, pr)
        return
      }
      const entries = pr.next <= r.log.lastIndex()
        ? r.log.slice(pr.next, r.log.lastIndex(), r.opts.maxEntriesPerMsg, r.opts.maxBytesPerMsg)
        : []
      if (entries.length === 0 && !(first && sendIfEmpty)) return
      first = false
      r.send({ type: 'Append', from: r.id, to, term: r.term, prevIndex, prevTerm, entries, commit: r.log.committed })
      pr.lastSentTick = this.ticks
      pr.sentEntries(prevIndex + entries.length, entries.length)
      // Only replicate state pipelines; a probe waits for its answer.
      if (pr.state !== 'replicate' || entries.length === 0) return
    }
  }

  private startSnapshot (to: NodeId, pr: Progress): void {
    const snap = this.r.snapshot
    if (snap === null) return
    pr.becomeSnapshot(snap.meta.index)
    this.sendSnapshotChunk(to, pr)
  }

  private sendSnapshotChunk (to: NodeId, pr: Progress): void {
    const r = this.r
    const snap = r.snapshot
    if (snap === null) return
    if (snap.meta.index !== pr.snapshotIndex) pr.becomeSnapshot(snap.meta.index)
    const chunk = snap.data.subarray(pr.snapshotOffset, pr.snapshotOffset + r.opts.snapshotChunkBytes)
    r.send({ type: 'Snapshot', from: r.id, to, term: r.term, meta: snap.meta, offset: pr.snapshotOffset, total: snap.data.byteLength, chunk })
    pr.lastSentTick = this.ticks
  }

  /**
   * Sends a heartbeat round. A periodic round goes only to followers the
   * leader has sent nothing they answer (Append, Snapshot, Heartbeat) for a
   * heartbeat interval: under load their Appends reset their election timers
   * and carry the commit index, and this halves the messages. Each follower
   * thus hears from the leader at least every heartbeatTick ticks, which the
   * §4.2.3 lease (followers ignore candidates while they hear from a leader)
   * relies on. Rounds that confirm reads go to everyone, and with lease reads
   * every round counts, so then none skips anyone.
   */
  private broadcastHeartbeat (periodic = false, only?: (pr: Progress) => boolean): number {
    const r = this.r
    const skipIdle = periodic && !r.opts.leaseRead
    const due = [...this.progress].filter(([, pr]) => (!skipIdle || this.ticks - pr.lastSentTick >= r.opts.heartbeatTick) && (only === undefined || only(pr)))
    if (due.length === 0) return r.rounds.current()
    const readSeq = r.rounds.next(this.ticks)
    const quiesce = this.quiet.quiesced
    for (const [to, pr] of due) {
      r.send({ type: 'Heartbeat', from: r.id, to, term: r.term, commit: Math.min(pr.match, r.log.committed), readSeq, quiesce })
      pr.lastSentTick = this.ticks
    }
    return readSeq
  }

  /** Stops periodic heartbeats: one marked round, repeated to whoever has not answered it. */
  private quiesce (): void {
    this.quiet.quiesced = true
    this.quiet.round = this.broadcastHeartbeat()
    this.heartbeatElapsed = 0
  }

  /**
   * Something happened: the quiet period starts over, and a quiesced leader
   * resumes heartbeats at once (unmarked, so every follower restarts its
   * election timer) with a fresh check-quorum window.
   */
  wake (): void {
    if (!this.quiet.wake()) return
    const r = this.r
    r.electionElapsed = 0
    for (const pr of this.progress.values()) pr.recentActive = false
    this.heartbeatElapsed = 0
    this.broadcastHeartbeat()
  }

  /**
   * A message from a member: a quiesced group expects only answers to its
   * heartbeats and ReadIndex requests. Anything else (a (pre-)vote request
   * from a follower whose timer runs again, a late or rejecting Append
   * answer) means someone is not quiet: wake, before the message can make
   * us step down.
   */
  onPeerMessage (m: Message): void {
    if (!this.quiet.quiesced || !this.progress.has(m.from)) return
    if (m.type === 'HeartbeatResp' || m.type === 'ReadIndex') return
    this.wake()
  }

  /** The transport lost `id`: no quiescence until it answers again, and wake now. */
  reportUnreachable (id: NodeId): void {
    const pr = this.progress.get(id)
    if (pr === undefined) return
    pr.unreachable = true
    this.wake()
  }

  /**
   * Quiesced, and every member answered the quiesce round: a tick would
   * only advance counters that waking resets, so no tick is needed until
   * something wakes the group.
   */
  dormant (): boolean {
    if (!this.quiet.quiesced || this.transferee !== null || this.r.rounds.hasPending()) return false
    const round = this.quiet.round
    for (const pr of this.progress.values()) if (pr.heartbeatAcked < round) return false
    return true
  }

  tick (): void {
    const r = this.r
    this.heartbeatElapsed++
    this.ticks++
    r.electionElapsed++
    if (r.electionElapsed >= r.opts.electionTick) {
      r.electionElapsed = 0
      // A quiesced leader expects no answers; the transport's reports wake it (quiescence.ts).
      if (r.opts.checkQuorum && !this.quiet.quiesced) {
        const active = (id: NodeId): boolean => id === r.id || this.progress.get(id)?.recentActive === true
        if (!hasQuorum(r.config.voters, active)) {
          // §6.2: a leader that cannot hear a majority steps down, so clients go elsewhere.
          r.becomeFollower(r.term, null)
          return
        }
        for (const pr of this.progress.values()) pr.recentActive = false
      }
      this.transferee = null
    }
    const busy = this.transferee !== null || this.pendingAppend || this.pendingCommit || this.pendingReadRound
    if (this.quiet.tick(r.opts.quiesceAfterTicks > 0 && leaderIdle(r, this.progress, busy), r.opts.quiesceAfterTicks)) this.quiesce()
    if (r.opts.leaseRead) {
      // Lease rounds go to everyone at a fixed cadence.
      if (this.heartbeatElapsed >= r.opts.heartbeatTick) {
        this.heartbeatElapsed = 0
        this.broadcastHeartbeat()
      }
    } else if (this.quiet.quiesced) {
      // The marked round again, to whoever has not answered it.
      if (this.heartbeatElapsed >= r.opts.heartbeatTick) {
        this.heartbeatElapsed = 0
        const round = this.quiet.round
        this.broadcastHeartbeat(false, pr => pr.heartbeatAcked < round)
      }
    } else {
      // Each follower on its own cadence: whoever has been sent nothing for an interval.
      this.broadcastHeartbeat(true)
    }
  }

  step (m: Message): void {
    const pr = this.progress.get(m.from)
    // Check-quorum counts only answers to our own messages: they prove the
    // follower hears us. A ReadIndex from a follower cut off one way would
    // otherwise keep a leader that can reach nobody in office (§6.2).
    if (pr !== undefined && (m.type === 'AppendResp' || m.type === 'HeartbeatResp' || m.type === 'SnapshotResp')) {
      pr.recentActive = true
      pr.unreachable = false
    }
    switch (m.type) {
      case 'AppendResp':
        if (pr !== undefined) this.onAppendResp(m, pr)
        return
      case 'HeartbeatResp': {
        if (pr === undefined) return
        pr.probeSent = false
        pr.freeFirstInflight()
        pr.heartbeatAcked = Math.max(pr.heartbeatAcked, m.readSeq)
        if (pr.state === 'snapshot') this.sendSnapshotChunk(m.from, pr)
        // An empty Append at next-1 makes a follower that lost entries reject and reveal where it is.
        else if (pr.match < this.r.log.lastIndex()) this.sendAppend(m.from, true)
        for (const read of this.r.rounds.ack(this.r.id, m.from, m.readSeq, this.r.config.voters)) {
          this.r.answerRead(read.ctx, read.from, read.index)
        }
        return
      }
      case 'SnapshotResp':
        if (pr !== undefined) this.onSnapshotResp(m, pr)
        return
      case 'ReadIndex':
        if (this.r.isMember(m.from)) this.handleRead(m.ctx, m.from)
        return
      default:
    }
  }

  private onAppendResp (m: AppendResponse, pr: Progress): void {
    const log = this.r.log
    if (m.reject) {
      let next = m.hintIndex
      if (m.hintTerm > 0) {
        const li = log.lastIndexOfTerm(m.hintTerm)
        if (li >= 0) next = li + 1
      }
      if (pr.maybeDecrement(m.index, Math.max(1, next))) this.sendAppend(m.from, true)
      return
    }
    const committedBefore = log.committed
    const confirmsProbe = pr.state === 'probe' && m.index >= pr.match
    if (pr.maybeUpdate(m.index) || confirmsProbe) {
      if (pr.state === 'probe') pr.becomeReplicate()
      else if (pr.state === 'snapshot' && pr.match >= pr.snapshotIndex) pr.becomeReplicate()
      this.maybeCommit()
      if (this.r.leaderState !== this) return
    }
    if (m.from === this.transferee && pr.match === log.lastIndex()) {
      this.r.send({ type: 'TimeoutNow', from: this.r.id, to: m.from, term: this.r.term })
    }
    this.sendAppend(m.from, false)
    // A late answer: the others' acks committed these entries while this
    // follower still had them in flight, so flush() sent it no notice, and
    // it would learn its own commit only at the next heartbeat. That is the
    // wait of every proposal forwarded from this follower, which resolves
    // when it applies there.
    if (committedBefore >= m.index && m.index > 0 && pr.state === 'replicate' && pr.inflightCount() === 0 && pr.next > log.lastIndex()) {
      this.r.send({ type: 'Commit', from: this.r.id, to: m.from, term: this.r.term, commit: Math.min(pr.match, log.committed) })
    }
  }

  private onSnapshotResp (m: SnapshotResponse, pr: Progress): void {
    if (pr.state !== 'snapshot' || m.snapshotIndex !== pr.snapshotIndex) return
    // One chunk in flight (stop-and-wait): only an answer that moves the
    // offset forward asks for the next chunk. The network repeats and
    // reorders answers; were each one a request, every repeat would start
    // one more stream of chunks, and the streams would multiply at every
    // chunk until they swamped the network. An answer that moves it back
    // (the follower restarted and lost what it had, or the answer is late)
    // only rewinds: the next heartbeat answer resends from there, as it
    // resends a lost chunk.
    const forward = m.offset > pr.snapshotOffset
    pr.snapshotOffset = m.offset
    if (!forward) return
    const snap = this.r.snapshot
    if (snap !== null && (snap.meta.index !== pr.snapshotIndex || m.offset < snap.data.byteLength)) {
      this.sendSnapshotChunk(m.from, pr)
    }
  }

  /** §6.4: serve a read at the commit index once a majority confirms our leadership. */
  handleRead (ctx: string, from: NodeId): void {
    const r = this.r
    if (r.log.term(r.log.committed) !== r.term) {
      r.readsWaitingForCommit.push({ ctx, from })
      return
    }
    const voters = r.config.voters
    if (voters.length === 1 && voters[0] === r.id) {
      r.answerRead(ctx, from, r.log.committed)
      return
    }
    if (r.opts.leaseRead && this.transferee === null && this.ticks < r.rounds.leaseUntil(r.id, voters, r.opts.electionTick)) {
      r.answerRead(ctx, from, r.log.committed)
      return
    }
    r.rounds.addRead(ctx, from, r.log.committed)
    this.pendingReadRound = true
  }

  startTransfer (to: NodeId): void {
    const r = this.r
    this.wake()
    this.transferee = to
    r.electionElapsed = 0
    const pr = this.progress.get(to) as Progress
    if (pr.match === r.log.lastIndex()) r.send({ type: 'TimeoutNow', from: r.id, to, term: r.term })
    else this.sendAppend(to, true)
  }

  progressSummary (): Record<NodeId, { match: number, next: number, state: string }> {
    const out: Record<NodeId, { match: number, next: number, state: string }> = {}
    for (const [id, pr] of this.progress) out[id] = { match: pr.match, next: pr.next, state: pr.state }
    return out
  }
}
