/**
 * The Raft state machine (in the style of etcd's raft): no timers, no I/O,
 * no randomness of its own. The caller drives it with tick(), step(),
 * propose() and readIndex(), then takes a Ready, persists its entries and
 * hard state, sends its messages, applies its committed entries, and calls
 * advance(). Role behaviour lives in one step function per role, swapped on
 * role change; replication is in leader.ts.
 */
import { emptyConfig, encodeConfChange, isMember, validateConfChange } from './config.js'
import { ConfigHistory } from './config-history.js'
import { stepFollower } from './follower.js'
import { SnapshotReceiver } from './snapshot-receiver.js'
import { ConfigChangeError, InvalidArgumentError, NotLeaderError, TransferInProgressError } from '../errors.js'
import { Leader } from './leader.js'
import type { Message } from './messages.js'
import { handleVoteRequest, requestVotes, stepCandidate } from './election.js'
import { RaftLog } from './raft-log.js'
import { HeartbeatRounds } from './read-only.js'
import { softStateEqual, type RaftStatus, type ReadState, type Ready, type Role, type SoftState } from './ready.js'
import { EntryType, hardStateEqual, type ConfChange, type ConfigState, type Entry, type HardState, type NodeId, type Snapshot } from '../types.js'

export type { RaftStatus, ReadState, Ready, Role, SoftState } from './ready.js'

import { resolveOptions, type RaftOptions } from './options.js'

export type { InitialState, RaftOptions } from './options.js'

export class RaftCore {
  readonly id: NodeId
  readonly opts: Required<Omit<RaftOptions, 'state' | 'bootstrap'>>
  #term = 0
  #vote: NodeId | null = null
  #leader: NodeId | null = null
  #role: Role = 'follower'
  readonly log: RaftLog
  #config: ConfigState = emptyConfig
  configs: ConfigHistory
  /** Latest snapshot of our own state machine or from the leader (data kept to send to followers). */
  snapshot: Snapshot | null
  electionElapsed = 0
  /** A follower whose leader quiesced the group: its election timer stands still (quiescence.ts). */
  quiesced = false
  private ticksSinceBoot = 0
  private randomizedTimeout = 0
  votes = new Map<NodeId, boolean>()
  msgs: Message[] = []
  readStates: ReadState[] = []
  readonly rounds = new HeartbeatRounds()
  /** Reads that arrived before the leader committed an entry of its term (§6.4 step 1). */
  readsWaitingForCommit: Array<{ ctx: string, from: NodeId }> = []
  leaderState: Leader | null = null
  readonly snapshotReceiver = new SnapshotReceiver()
  /** A snapshot from the leader that the next Ready must persist and restore. */
  pendingSnapshot: Snapshot | null = null
  private prevHardState: HardState
  private prevSoftState: SoftState
  private inFlight: { lastEntry: Entry | null, applyTo: number, snapshot: Snapshot | null } | null = null
  private stepRole: (m: Message) => void = m => { stepFollower(this, m) }

  constructor (options: RaftOptions) {
    this.id = options.id
    this.opts = resolveOptions(options)
    const state = options.state
    const hs = state?.hardState ?? { term: 0, vote: null, commit: 0 }
    this.snapshot = state?.snapshot ?? null
    const bootstrap = options.bootstrap ?? []
    // A node's first entries (its bootstrap, or the first Append it took) are
    // saved together with a hard state, and every later save follows that
    // one. No hard state means the first save never completed, though a crash
    // may have kept a prefix of its entries (say, only "add n1", which would
    // make n1 a cluster of one). Nothing was acknowledged: start over.
    const neverSaved = hs.term === 0 && this.snapshot === null
    this.log = new RaftLog(this.snapshot?.meta ?? null, neverSaved ? [] : state?.entries ?? [], hs.commit)
    this.configs = new ConfigHistory(this.log.snapshotIndex, this.snapshot?.meta.config ?? emptyConfig)
    this.#config = this.configs.current
    this.#term = hs.term
    this.#vote = hs.vote
    if (this.log.lastTerm() > hs.term) {
      // A torn write kept entries but not the hard state that came with them;
      // our term was at least theirs, and a vote never sent binds nobody.
      this.#term = this.log.lastTerm()
      this.#vote = null
    }
    if (neverSaved && bootstrap.length > 0) this.bootstrapLog(bootstrap)
    for (let i = this.log.firstIndex(); i <= this.log.lastIndex(); i++) this.noteAppended(this.log.entry(i) as Entry)
    // A bootstrapped log is not yet durable: force its hard state into the first Ready.
    this.prevHardState = this.log.stable < this.log.lastIndex() ? { term: -1, vote: null, commit: -1 } : hs
    this.becomeFollower(this.term, null)
    this.prevSoftState = this.softState()
  }

  /** Current term (durable with the vote). */
  get term (): number { return this.#term }
  /** Whom we voted for in this term, if anyone. */
  get vote (): NodeId | null { return this.#vote }
  /** The leader we know of in this term, or null. */
  get leader (): NodeId | null { return this.#leader }
  get role (): Role { return this.#role }
  /** The membership in effect: the latest config entry in the log, committed or not. */
  get config (): ConfigState { return this.#config }

  /** A vote granted to `candidate` in this term (the role files decide; only the core holds it). */
  recordVote (candidate: NodeId): void {
    this.electionElapsed = 0
    this.#vote = candidate
  }

  /** The leader of our term spoke: it is alive, and it leads. */
  heardFromLeader (leader: NodeId): void {
    this.electionElapsed = 0
    this.#leader = leader
  }

  /**
   * A new cluster starts from identical committed config entries on every
   * bootstrap node (term 1), so their logs match and later members receive
   * the full membership history from the leader.
   */
  private bootstrapLog (voters: readonly NodeId[]): void {
    const sorted = [...new Set(voters)].sort()
    const entries: Entry[] = sorted.map((node, i) => ({
      index: i + 1, term: 1, type: EntryType.Config, data: encodeConfChange({ type: 'addVoter', node })
    }))
    this.log.append(entries)
    this.log.stable = 0
    this.log.committed = entries.length
    this.#term = 1
  }

  softState (): SoftState {
    return { role: this.role, leader: this.leader, term: this.term }
  }

  hardState (): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed }
  }

  /**
   * True when this node may campaign: it is a voter in the latest config, or
   * in the committed one while a change removing it is uncommitted. The
   * latter matters when a leader removed itself and lost office before the
   * removal committed: its log may be the only up-to-date one, so no other
   * voter can win without it, and it must be able to win (counting the votes
   * of the config it holds, §4.2.2) to commit the removal.
   */
  promotable (): boolean {
    if (this.config.voters.includes(this.id)) return true
    return this.pendingConfigIndex() !== 0 && this.configs.at(this.log.committed).voters.includes(this.id)
  }

  // ---- configuration tracking -------------------------------------------

  /** Called for every entry that enters the log: config entries take effect on append. */
  noteAppended (e: Entry): void {
    if (this.configs.append(e)) this.setConfig(this.configs.current)
  }

  /**
   * After a truncation, fall back to the config of the last config entry at
   * or before `lastKept`, the last entry that survived it (config entries
   * among the new entries are noted afterwards, as they are appended).
   */
  rewindConfig (lastKept: number): void {
    this.configs.rewind(lastKept)
    this.setConfig(this.configs.current)
  }

  /** Index of the newest config entry not yet committed, or 0. */
  pendingConfigIndex (): number {
    return this.configs.pendingIndex(this.log.committed)
  }

  setConfig (c: ConfigState): void {
    this.#config = c
    this.leaderState?.syncProgress()
  }

  // ---- role transitions ---------------------------------------------------

  private reset (term: number): void {
    if (this.term !== term) {
      this.#term = term
      this.#vote = null
    }
    this.#leader = null
    this.electionElapsed = 0
    this.quiesced = false
    this.randomizedTimeout = this.opts.electionTick + Math.floor(this.opts.random() * this.opts.electionTick)
    this.votes = new Map()
    this.snapshotReceiver.reset()
    if (this.leaderState !== null) this.failPendingReads()
    this.leaderState = null
  }

  becomeFollower (term: number, leader: NodeId | null): void {
    this.reset(term)
    this.#leader = leader
    this.#role = 'follower'
    this.stepRole = m => { stepFollower(this, m) }
  }

  private becomePreCandidate (): void {
    // Pre-vote does not touch term or vote: a partitioned node cannot inflate terms (§9.6).
    this.votes = new Map()
    this.#leader = null
    this.quiesced = false
    this.#role = 'preCandidate'
    this.stepRole = m => { stepCandidate(this, m) }
  }

  becomeCandidate (): void {
    this.reset(this.term + 1)
    this.#vote = this.id
    this.#role = 'candidate'
    this.stepRole = m => { stepCandidate(this, m) }
  }

  becomeLeader (): void {
    this.reset(this.term)
    this.#leader = this.id
    this.#role = 'leader'
    this.leaderState = new Leader(this)
    this.stepRole = m => { (this.leaderState as Leader).step(m) }
    // §3.6.2 / §6.4: a no-op of the new term lets the leader learn the commit index.
    this.leaderState.appendEntries([{ type: EntryType.Noop, data: new Uint8Array(0) }])
  }

  private failPendingReads (): void {
    for (const r of [...this.rounds.drain(), ...this.readsWaitingForCommit.splice(0)]) {
      this.answerRead(r.ctx, r.from, -1)
    }
  }

  /** Delivers a read result to whoever asked: a local ReadState or a ReadIndexResp. */
  answerRead (ctx: string, from: NodeId, index: number): void {
    if (from === this.id) this.readStates.push({ ctx, index })
    else this.send({ type: 'ReadIndexResp', from: this.id, to: from, term: this.term, ctx, index })
  }

  send (m: Message): void {
    this.msgs.push(m)
  }

  // ---- ticks ---------------------------------------------------------------

  /**
   * True when ticks would change nothing until a message, a proposal or a
   * transport report arrives: a quiesced follower (its election timer stands
   * still) or a quiesced leader that every member has answered. The driver
   * then stops its tick timer, so an idle group costs no wake-ups per tick.
   */
  dormant (): boolean {
    if (this.leaderState !== null) return this.leaderState.dormant()
    return this.#role === 'follower' && this.quiesced
  }

  tick (): void {
    this.ticksSinceBoot++
    if (this.leaderState !== null) {
      this.leaderState.tick()
      return
    }
    if (this.quiesced) return
    this.electionElapsed++
    if (this.promotable() && this.electionElapsed >= this.randomizedTimeout) {
      this.electionElapsed = 0
      this.campaign(false)
    }
  }

  /**
   * The transport saw the connection to `id` fail (a crashed process is seen
   * in milliseconds). If it was our leader, stop waiting for the election
   * timeout: forget the leader and campaign within a few ticks. Followers
   * are staggered by their rank among the remaining voters (1, 3, 5 ... ticks)
   * so that those who all noticed do not split the vote. A false alarm only
   * costs an election. With lease reads the leader's lease must be honoured,
   * so then we keep waiting. A quiesced follower wakes: this report is how it
   * learns that its leader is gone. A leader wakes, and does not quiesce
   * again until `id` answers (quiescence.ts).
   */
  reportUnreachable (id: NodeId): void {
    if (this.leaderState !== null) {
      this.leaderState.reportUnreachable(id)
      return
    }
    if (this.opts.leaseRead || this.role !== 'follower' || this.leader !== id) return
    this.#leader = null
    this.quiesced = false
    const rank = Math.max(0, this.config.voters.filter(v => v !== id).indexOf(this.id))
    this.electionElapsed = Math.max(this.electionElapsed, this.randomizedTimeout - 1 - 2 * rank)
  }

  /** Starts an election now (pre-vote first unless forced by leadership transfer). */
  campaign (force: boolean): void {
    if (!this.promotable() || this.role === 'leader') return
    if (this.opts.preVote && !force) {
      this.becomePreCandidate()
      requestVotes(this, 'PreVote', this.term + 1, false)
    } else {
      this.becomeCandidate()
      requestVotes(this, 'Vote', this.term, force)
    }
  }

  // ---- stepping ------------------------------------------------------------

  step (m: Message): void {
    if (m.to !== this.id) return
    this.leaderState?.onPeerMessage(m)
    if (m.term > this.term) {
      if ((m.type === 'PreVote' || m.type === 'Vote') && this.quiesced && m.from === this.leader) {
        // Our quiesced leader campaigns: it lost office (its wake-up
        // heartbeat never reached us). Waiting on it would refuse the one
        // candidate whose log certainly holds ours (quiescence.ts).
        this.#leader = null
        this.quiesced = false
      }
      if (m.type === 'PreVote' || m.type === 'Vote') {
        // §4.2.3: while we hear from a leader, ignore disruptive candidates,
        // check-quorum or not. A voter removed from the configuration hears
        // from no leader and campaigns with ever higher terms; without this
        // (and without pre-vote) each of its campaigns deposes the leader,
        // and the cluster may never commit again.
        const inLease = (this.leader !== null && this.electionElapsed < this.opts.electionTick) ||
          // With lease reads, a restarted node may have acknowledged a leader's lease before it crashed.
          (this.opts.leaseRead && this.ticksSinceBoot < this.opts.electionTick)
        if (inLease && !m.force) return
      }
      if (m.type === 'PreVote' || (m.type === 'PreVoteResp' && !m.reject)) {
        // A pre-vote neither raises our term nor is raised by a granted answer.
      } else {
        const fromLeader = m.type === 'Append' || m.type === 'Heartbeat' || m.type === 'Commit' || m.type === 'Snapshot'
        this.becomeFollower(m.term, fromLeader ? m.from : null)
      }
    } else if (m.term < this.term) {
      if (m.type === 'Append' || m.type === 'Heartbeat' || m.type === 'Commit') {
        // Tell a stale leader about the newer term so it steps down.
        this.send({ type: 'AppendResp', from: this.id, to: m.from, term: this.term, reject: true, index: 0, hintIndex: 0, hintTerm: 0 })
      } else if (m.type === 'PreVote') {
        this.send({ type: 'PreVoteResp', from: this.id, to: m.from, term: this.term, reject: true })
      }
      return
    }
    if (m.type === 'PreVote' || m.type === 'Vote') {
      handleVoteRequest(this, m)
      return
    }
    this.stepRole(m)
  }

  // ---- client API ----------------------------------------------------------

  private requireLeader (): Leader {
    if (this.leaderState === null) throw new NotLeaderError(this.leader)
    if (this.leaderState.transferee !== null) throw new TransferInProgressError()
    return this.leaderState
  }

  /** Appends a command; returns where it went. Throws NotLeaderError on a non-leader. */
  propose (data: Uint8Array): { index: number, term: number } {
    const e = this.requireLeader().appendEntries([{ type: EntryType.Normal, data }])
    return { index: e.index, term: e.term }
  }

  /** Proposes one membership change; see config.ts for the rules that keep it safe. */
  proposeConfChange (cc: ConfChange): { index: number, term: number } {
    const leader = this.requireLeader()
    if (this.pendingConfigIndex() !== 0) throw new ConfigChangeError('another membership change is not yet committed')
    if (this.log.term(this.log.committed) !== this.term) throw new ConfigChangeError('the leader has not yet committed an entry in its term')
    const why = validateConfChange(this.config, cc)
    if (why !== null) throw new ConfigChangeError(why)
    const e = leader.appendEntries([{ type: EntryType.Config, data: encodeConfChange(cc) }])
    return { index: e.index, term: e.term }
  }

  /**
   * Learns, outside the Raft messages, that the entry `(index, term)` is
   * committed: the leader said so in its answer to a proposal this node
   * forwarded. Only an entry of that same term at that index here counts;
   * by log matching our log then equals the leader's up to it. Lets a
   * follower apply its own forwarded proposal without waiting for the
   * leader's (deliberately held back) commit notice. A leader counts its
   * own commits and ignores this.
   */
  learnCommitted (index: number, term: number): void {
    if (this.leaderState !== null || index <= this.log.committed || this.log.term(index) !== term) return
    this.log.commitTo(index)
  }

  /** Asks for a linearizable read; the answer arrives as a ReadState with this ctx. */
  readIndex (ctx: string): void {
    if (this.leaderState !== null) {
      this.leaderState.handleRead(ctx, this.id)
      return
    }
    if (this.leader === null) throw new NotLeaderError(null)
    this.send({ type: 'ReadIndex', from: this.id, to: this.leader, term: this.term, ctx })
  }

  /** Hands leadership to `to` once its log is caught up (§3.10). */
  transferLeadership (to: NodeId): void {
    const leader = this.requireLeader()
    if (to === this.id) return
    if (!this.config.voters.includes(to)) throw new InvalidArgumentError(`${to} is not a voter`)
    leader.startTransfer(to)
  }

  /**
   * Records a snapshot of the state machine at `index` (applied) and drops
   * the log before it. The caller must save the returned snapshot durably.
   */
  compact (index: number, data: Uint8Array): Snapshot {
    if (index > this.log.applied) throw new InvalidArgumentError(`cannot snapshot at ${index}: applied is ${this.log.applied}`)
    if (index <= this.log.snapshotIndex) throw new InvalidArgumentError(`snapshot at ${index} is not newer than ${this.log.snapshotIndex}`)
    const meta = { index, term: this.log.term(index) as number, config: this.configs.at(index) }
    this.log.compact(index)
    this.configs.compact(index)
    this.snapshot = { meta, data }
    return this.snapshot
  }

  // ---- Ready ---------------------------------------------------------------

  hasReady (): boolean {
    if (this.inFlight !== null) return false
    this.leaderState?.flush()
    return this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.pendingSnapshot !== null ||
      this.log.stable < this.log.lastIndex() ||
      this.log.committed > Math.max(this.log.applied, this.log.snapshotIndex) ||
      !hardStateEqual(this.hardState(), this.prevHardState) ||
      !softStateEqual(this.softState(), this.prevSoftState)
  }

  /** Takes the pending work. Call advance(ready) once it is done, before the next ready(). */
  ready (): Ready {
    if (this.inFlight !== null) throw new Error('ready() called again before advance()')
    this.leaderState?.flush()
    const hs = this.hardState()
    const entries = this.log.unstableEntries()
    // After a snapshot restore, applying resumes after the snapshot.
    const applyFrom = Math.max(this.log.applied, this.log.snapshotIndex) + 1
    const committedEntries = this.log.committed >= applyFrom ? this.log.slice(applyFrom, this.log.committed) : []
    const rd: Ready = {
      softState: this.softState(),
      hardState: hardStateEqual(hs, this.prevHardState) ? null : hs,
      entries,
      snapshot: this.pendingSnapshot,
      committedEntries,
      messages: this.msgs,
      readStates: this.readStates
    }
    this.prevHardState = hs
    this.prevSoftState = rd.softState
    this.msgs = []
    this.readStates = []
    this.pendingSnapshot = null
    this.inFlight = {
      lastEntry: entries.length > 0 ? entries[entries.length - 1] : null,
      applyTo: committedEntries.length > 0 ? committedEntries[committedEntries.length - 1].index : this.log.applied,
      snapshot: rd.snapshot
    }
    return rd
  }

  /** The caller has persisted, sent and applied a Ready. */
  advance (): void {
    const f = this.inFlight
    if (f === null) throw new Error('advance() called without a ready()')
    this.inFlight = null
    if (f.snapshot !== null) this.log.applied = Math.max(this.log.applied, f.snapshot.meta.index)
    if (f.lastEntry !== null) this.log.stableTo(f.lastEntry.index, f.lastEntry.term)
    this.log.applied = Math.max(this.log.applied, f.applyTo)
    this.leaderState?.onSelfPersisted()
  }

  /** A summary for status pages and tests. */
  status (): RaftStatus {
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      leader: this.leader,
      commitIndex: this.log.committed,
      appliedIndex: this.log.applied,
      lastIndex: this.log.lastIndex(),
      snapshotIndex: this.log.snapshotIndex,
      config: this.config,
      progress: this.leaderState?.progressSummary() ?? {}
    }
  }

  isMember (id: NodeId): boolean {
    return isMember(this.config, id)
  }
}
