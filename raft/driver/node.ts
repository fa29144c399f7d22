/**
 * The driver: runs a RaftCore with real timers, durable storage, a
 * transport and the application's state machine. It is the only part of
 * raft/ with timers and I/O. Each Ready is handled to completion before the
 * next (persist, send, apply, advance), which is what makes "never answer
 * before it is durable" hold.
 */
import { randomInt } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { systemClock, type Clock, type TimerHandle } from './clock.js'
import { RaftCore, type RaftStatus, type Ready, type SoftState } from '../core/core.js'
import { LeadershipLostError, NotLeaderError, StoppedError } from '../errors.js'
import { HeldNotices } from './held-notices.js'
import { validateOptions, type RaftNodeOptions } from './options.js'
import { SnapshotSchedule } from './snapshot-schedule.js'
import { silentLogger, type Logger } from '../logger.js'
import { splitLeaderMessages, type Message } from '../core/messages.js'
import { PendingProposal } from './pending-proposal.js'
import { EntryType, type ConfChange, type Entry, type NodeId } from '../types.js'

export type { RaftNodeOptions } from './options.js'

/** How long a commit notice may wait for an Append to carry its commit index instead. */
const COMMIT_NOTICE_DELAY_MS = 2

export interface ProposeOptions {
  readonly signal?: AbortSignal
  /** Give up waiting after this long; the outcome is then unknown. Default 10000. */
  readonly timeoutMs?: number
}

export interface RaftNodeEvents {
  /** Role, leader or term changed. */
  state: [SoftState]
  /** Entries up to this index are applied. */
  applied: [number]
  /**
   * Storage failed: the node has already stopped, rather than risk
   * acknowledging lost data. Emitted only when someone listens (the failure
   * is logged either way), so it never throws for want of a listener.
   */
  error: [Error]
}

interface Waiter<T> {
  resolve: (v: T) => void
  reject: (e: Error) => void
}

let coreOf: (node: RaftNode<any>) => RaftCore

/**
 * The core inside a node, for the simulator's invariant checks (raft/index.ts
 * does not export it). Callers must only read it: the driver owns it.
 */
export function inspectCore (node: RaftNode<any>): RaftCore {
  return coreOf(node)
}

export class RaftNode<R = unknown> extends EventEmitter<RaftNodeEvents> {
  static {
    coreOf = node => node.core
  }

  readonly id: NodeId
  private readonly core: RaftCore
  private readonly opts: RaftNodeOptions<R>
  private readonly clock: Clock
  private readonly log: Logger
  private timer: TimerHandle | null = null
  private running = false
  private stopped = false
  private readonly proposals = new Map<number, PendingProposal<R | undefined>>()
  private readonly reads = new Map<string, Waiter<number>>()
  /** Tick at which each unanswered read last asked the leader. */
  private readonly readAskedAt = new Map<string, number>()
  private ticks = 0
  private readonly readWaits: Array<{ index: number, waiter: Waiter<number> }> = []
  /** Commit notices held back (see handleReady). */
  private readonly notices: HeldNotices
  private lastState: SoftState
  private readSeq = 0
  /**
   * Drawn at each start and put in every read's ctx: a leader may answer a
   * read this node asked before it crashed, and that answer must not match
   * a read asked after the restart (its index can predate writes
   * acknowledged before the new read began).
   */
  private readonly boot: string
  private persistedTerm = -1
  private persistedVote: NodeId | null = null
  private readonly schedule: SnapshotSchedule
  /** This node's latest snapshot while the store writes it; the log goes on meanwhile. */
  private savingSnapshot: Promise<void> | null = null

  private constructor (opts: RaftNodeOptions<R>, core: RaftCore, random: () => number) {
    super()
    this.boot = Math.floor(random() * 2 ** 30).toString(36)
    this.id = opts.id
    this.opts = opts
    this.core = core
    this.clock = opts.clock ?? systemClock
    this.log = (opts.logger ?? silentLogger).child({ node: opts.id })
    this.lastState = core.softState()
    this.schedule = new SnapshotSchedule(opts.snapshotEvery ?? 10000, opts.snapshotLogRatio ?? 1)
    const schedule = (fn: () => void, ms: number): () => void => {
      const timer = this.clock.setTimeout(fn, ms)
      return () => { this.clock.clearTimeout(timer) }
    }
    this.notices = new HeldNotices(COMMIT_NOTICE_DELAY_MS, notices => { if (!this.stopped) this.opts.transport.send(notices) }, schedule)
  }

  /** Opens storage, restores the state machine from the last snapshot and starts ticking. */
  static async start<R> (opts: RaftNodeOptions<R>): Promise<RaftNode<R>> {
    validateOptions(opts)
    const state = await opts.store.open()
    if (state.snapshot !== null) await opts.stateMachine.restore(state.snapshot.data)
    const random = opts.random ?? (() => randomInt(0, 2 ** 30) / 2 ** 30)
    const core = new RaftCore({
      id: opts.id,
      random,
      electionTick: opts.electionTick,
      heartbeatTick: opts.heartbeatTick,
      leaseRead: opts.leaseRead,
      quiesceAfterTicks: opts.quiesceAfterTicks,
      preVote: opts.preVote,
      checkQuorum: opts.checkQuorum,
      maxInflight: opts.maxInflight,
      maxEntriesPerMsg: opts.maxEntriesPerMsg,
      maxBytesPerMsg: opts.maxBytesPerMsg,
      snapshotChunkBytes: opts.snapshotChunkBytes,
      state,
      bootstrap: opts.bootstrap
    })
    const node = new RaftNode(opts, core, random)
    node.schedule.taken(state.snapshot?.data.byteLength ?? 0)
    node.log.info({ term: core.term, commit: core.log.committed, lastIndex: core.log.lastIndex(), snapshotIndex: core.log.snapshotIndex }, 'raft node started')
    opts.transport.onMessage(m => { node.receive(m) })
    node.updateTicking()
    node.kick()
    return node
  }

  private onTick (): void {
    this.ticks++
    this.core.tick()
    this.askAgain()
    this.kick()
  }

  /**
   * Runs the tick timer only while a tick can matter: a dormant group (see
   * RaftCore.dormant) with no read of ours to ask again would spend a
   * wake-up per tick doing nothing. Everything that can end dormancy
   * (a message, a proposal, a read, a transport report) passes through
   * kick(), whose loop calls this when it is done.
   */
  private updateTicking (): void {
    const needed = !this.stopped && (!this.core.dormant() || this.readAskedAt.size > 0)
    if (needed && this.timer === null) {
      this.timer = this.clock.setInterval(() => { this.onTick() }, this.opts.tickMs ?? 50)
    } else if (!needed && this.timer !== null) {
      this.clock.clearInterval(this.timer)
      this.timer = null
    }
  }

  /**
   * A ReadIndex request or its answer may be lost in transit; ask again
   * after an election timeout rather than waiting for the caller's timeout.
   * A duplicate answer finds no waiter and is ignored.
   */
  private askAgain (): void {
    const every = this.opts.electionTick ?? 10
    for (const [ctx, at] of this.readAskedAt) {
      if (this.ticks - at < every) continue
      this.readAskedAt.set(ctx, this.ticks)
      try {
        this.core.readIndex(ctx)
      } catch (err) {
        this.reads.get(ctx)?.reject(err as Error)
      }
    }
  }

  private receive (m: Message): void {
    if (this.stopped) return
    this.core.step(m)
    this.kick()
  }

  /** Processes Readies until there is nothing left; one loop at a time. */
  private kick (): void {
    if (this.running || this.stopped) return
    this.running = true
    // A microtask, not a macrotask: the Ready goes out as soon as the current
    // event is handled, with everything it stepped batched into it.
    queueMicrotask(() => {
      this.loop().catch(err => { this.fail(err as Error) }).finally(() => {
        this.running = false
        // Work that arrived while the loop was finishing must not wait for the next tick.
        if (!this.stopped && this.core.hasReady()) this.kick()
        else this.updateTicking()
      })
    })
  }

  private async loop (): Promise<void> {
    while (!this.stopped && this.core.hasReady()) {
      const rd = this.core.ready()
      await this.handleReady(rd)
      this.core.advance()
      this.afterAdvance(rd)
      await this.maybeSnapshot()
    }
  }

  private async handleReady (rd: Ready): Promise<void> {
    const { store, stateMachine } = this.opts
    const { early, late } = rd.softState.role === 'leader' ? splitLeaderMessages(rd.messages) : { early: [], late: rd.messages }
    // Commit notices go out after the proposers the commit completes are
    // answered. While more entries are in flight, their Appends carry the
    // commit index soon anyway, so a notice waits up to
    // COMMIT_NOTICE_DELAY_MS for one to overtake it (saving a follower
    // wakeup per write under steady load). With nothing in flight no Append
    // is coming, and followers act on what they apply (a lock or a queue
    // item granted to a waiter there), so it leaves at once.
    const notices = early.filter(m => m.type === 'Commit')
    this.send(notices.length === 0 ? early : early.filter(m => m.type !== 'Commit'))
    const idle = this.core.log.lastIndex() === this.core.log.committed
    if (notices.length > 0 && !idle) this.notices.hold(notices)
    // Committed entries are durable on a majority already: apply them (and
    // answer their proposers) without waiting for this Ready's own fsync.
    if (rd.snapshot === null) for (const e of rd.committedEntries) this.applyEntry(e)
    if (notices.length > 0 && idle) this.send(notices)
    if (rd.snapshot !== null) {
      await this.savingSnapshot
      await store.saveSnapshot(rd.snapshot)
    }
    const hs = this.mustPersist(rd) ? rd.hardState : null
    if (rd.entries.length > 0 || hs !== null) await store.save(rd.entries, hs)
    this.send(late)
    if (rd.snapshot !== null) {
      await stateMachine.restore(rd.snapshot.data)
      this.schedule.taken(rd.snapshot.data.byteLength)
      for (const e of rd.committedEntries) this.applyEntry(e)
    }
  }

  /** Sends in order, after the held commit notices an Append does not overtake. */
  private send (messages: readonly Message[]): void {
    if (messages.length === 0) return
    this.notices.beforeSend(messages)
    this.opts.transport.send(messages)
  }

  /**
   * The commit index is not needed for safety after a restart (it is
   * relearned from the leader), so a Ready whose only change is the commit
   * index costs no fsync, as in etcd's MustSync. Term and vote always do.
   */
  private mustPersist (rd: Ready): boolean {
    const hs = rd.hardState
    if (hs === null) return false
    if (rd.entries.length > 0 || hs.term !== this.persistedTerm || hs.vote !== this.persistedVote) {
      this.persistedTerm = hs.term
      this.persistedVote = hs.vote
      return true
    }
    return false
  }

  private applyEntry (e: Entry): void {
    this.schedule.applied(e.data.byteLength)
    const result = e.type === EntryType.Normal ? this.opts.stateMachine.apply(e) : undefined
    const w = this.proposals.get(e.index)
    if (w === undefined) return
    this.proposals.delete(e.index)
    if (w.term === e.term) w.resolve(result)
    else w.reject(new LeadershipLostError('the entry was replaced by a new leader: it did not commit'))
  }

  private afterAdvance (rd: Ready): void {
    const applied = this.core.log.applied
    if (rd.committedEntries.length > 0 || rd.snapshot !== null) this.emit('applied', applied)
    for (const rs of rd.readStates) {
      const w = this.reads.get(rs.ctx)
      if (w === undefined) continue
      this.reads.delete(rs.ctx)
      this.readAskedAt.delete(rs.ctx)
      if (rs.index < 0) w.reject(new NotLeaderError(this.core.leader))
      else this.readWaits.push({ index: rs.index, waiter: w })
    }
    for (const w of this.readWaits.filter(x => applied >= x.index)) w.waiter.resolve(w.index)
    // Proposals whose slot a leader's snapshot covered can no longer be matched
    // to a result. (Our own snapshots cover only applied entries, whose
    // proposals were answered when they were applied.)
    if (rd.snapshot !== null) {
      for (const [index, w] of this.proposals) {
        if (index > rd.snapshot.meta.index) continue
        this.proposals.delete(index)
        w.reject(new LeadershipLostError('a snapshot replaced the entry before this node applied it; its outcome is unknown'))
      }
    }
    const prev = this.lastState
    const now = this.core.softState()
    if (prev.role !== now.role || prev.leader !== now.leader || prev.term !== now.term) {
      this.lastState = now
      this.log.info({ role: now.role, leader: now.leader, term: now.term }, 'raft state changed')
      this.emit('state', now)
    }
  }

  /** Takes a snapshot when due; the store writes it while the loop goes on (one at a time). */
  private async maybeSnapshot (): Promise<void> {
    const applied = this.core.log.applied
    if (this.savingSnapshot !== null || !this.schedule.due(applied - this.core.log.snapshotIndex)) return
    const data = await this.opts.stateMachine.snapshot()
    const snap = this.core.compact(applied, data)
    this.schedule.taken(data.byteLength)
    this.savingSnapshot = this.opts.store.saveSnapshot(snap).then(
      () => { this.log.debug({ index: snap.meta.index, bytes: data.byteLength }, 'snapshot taken') },
      (err: unknown) => { this.fail(err instanceof Error ? err : new Error(String(err))) }
    ).finally(() => { this.savingSnapshot = null })
  }

  /** Stops first (so nothing more is acknowledged), then reports. */
  private fail (err: Error): void {
    if (this.stopped) return
    this.log.error({ err }, 'raft node stopped: storage failed')
    this.stop()
      .catch((stopErr: unknown) => { this.log.error({ err: stopErr }, 'closing storage or transport after the failure failed too') })
      .finally(() => { if (this.listenerCount('error') > 0) this.emit('error', err) })
  }

  private wait<T> (register: (w: Waiter<T>) => void, unregister: () => void, opts: ProposeOptions, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? 10000
      const timer = this.clock.setTimeout(() => { cleanup(); reject(new LeadershipLostError(`${what} timed out after ${timeoutMs} ms; its outcome is unknown`)) }, timeoutMs)
      const onAbort = (): void => { cleanup(); reject(opts.signal?.reason as Error) }
      const cleanup = (): void => {
        this.clock.clearTimeout(timer)
        opts.signal?.removeEventListener('abort', onAbort)
        unregister()
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      register({
        resolve: v => { cleanup(); resolve(v) },
        reject: e => { cleanup(); reject(e) }
      })
    })
  }

  private waitApplied (index: number, term: number, opts: ProposeOptions, what: string): Promise<R | undefined> {
    return new Promise<R | undefined>((resolve, reject) => {
      this.proposals.set(index, new PendingProposal(index, term, this.proposals, this.clock, resolve, reject, opts.timeoutMs ?? 10000, opts.signal, what))
    })
  }

  private guard (opts: ProposeOptions): void {
    if (this.stopped) throw new StoppedError()
    opts.signal?.throwIfAborted()
  }

  /**
   * Replicates a command and resolves with the state machine's result once
   * it is applied here. Throws NotLeaderError at once on a follower.
   */
  async propose (data: Uint8Array, opts: ProposeOptions = {}): Promise<{ index: number, term: number, result: R | undefined }> {
    this.guard(opts)
    const { index, term } = this.core.propose(data)
    this.kick()
    const result = await this.waitApplied(index, term, opts, 'proposal')
    return { index, term, result }
  }

  /** See RaftCore.learnCommitted: the leader's word that `(index, term)` is committed. */
  learnCommitted (index: number, term: number): void {
    if (this.stopped) return
    this.core.learnCommitted(index, term)
    this.kick()
  }

  /** Proposes a membership change and resolves once it is applied. */
  async changeMembership (cc: ConfChange, opts: ProposeOptions = {}): Promise<number> {
    this.guard(opts)
    const { index, term } = this.core.proposeConfChange(cc)
    this.kick()
    await this.waitApplied(index, term, opts, 'membership change')
    return index
  }

  /**
   * A linearizable read barrier (ReadIndex, thesis §6.4): resolves with an
   * index once this node has applied everything committed when the read
   * began, so reading the local state machine afterwards is linearizable.
   */
  async readBarrier (opts: ProposeOptions = {}): Promise<number> {
    this.guard(opts)
    const ctx = `${this.id}:${this.boot}:${++this.readSeq}`
    this.core.readIndex(ctx)
    this.kick()
    let mine: Waiter<number> | undefined
    return await this.wait<number>(
      w => { mine = w; this.reads.set(ctx, w); this.readAskedAt.set(ctx, this.ticks) },
      () => {
        this.reads.delete(ctx)
        this.readAskedAt.delete(ctx)
        const i = this.readWaits.findIndex(x => x.waiter === mine)
        if (i >= 0) this.readWaits.splice(i, 1)
      },
      opts, 'read')
  }

  /** Hands leadership to another voter. */
  transferLeadership (to: NodeId): void {
    if (this.stopped) throw new StoppedError()
    this.core.transferLeadership(to)
    this.kick()
  }

  /** Tells Raft the transport lost `id` (see RaftCore.reportUnreachable): a dead leader is replaced faster. */
  reportUnreachable (id: NodeId): void {
    if (this.stopped) return
    this.core.reportUnreachable(id)
    // A quiesced leader wakes and has heartbeats to send.
    this.kick()
  }

  /** Starts an election now, skipping the timeout. */
  campaign (): void {
    if (this.stopped) throw new StoppedError()
    this.core.campaign(false)
    this.kick()
  }

  status (): RaftStatus {
    return this.core.status()
  }

  get leader (): NodeId | null {
    return this.core.leader
  }

  get isLeader (): boolean {
    return this.core.role === 'leader'
  }

  /** Stops ticking and receiving, fails everything waiting, and closes storage and transport. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.timer !== null) this.clock.clearInterval(this.timer)
    this.timer = null
    this.notices.clear()
    const err = new StoppedError()
    for (const w of [...this.proposals.values(), ...this.reads.values(), ...this.readWaits.map(x => x.waiter)]) w.reject(err)
    while (this.running) await new Promise(resolve => setImmediate(resolve))
    await this.opts.transport.close()
    await this.opts.store.close()
  }
}
