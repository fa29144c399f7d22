/**
 * This node's session on the coordination log, and the lease its locks
 * hang on.
 *
 * Every `intervalMs` the node sends a keep-alive to the leader. A keep-alive
 * sent at monotonic time t and answered proves the leader will not expire
 * the session before t + TTL (see LeaderSessions), so the local deadline
 * becomes t + TTL - margin, the margin covering clock-rate drift between
 * machines. The lease is continuous or dead: once the deadline passes
 * without an answer, the session is given up for good (its locks may be
 * granted elsewhere from then on) and a new one is opened; a late answer
 * cannot revive it.
 *
 * The same answers tell whether this node is part of a majority: none for
 * `panicAfterMs` is a quorum-loss panic. `panicAfterMs` < TTL, so a cut-off
 * node panics before the majority can expire its session.
 */
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { RaftNode } from '../raft/index.js'
import type { Logger } from '../gossip/logger.js'
import { errorFields } from '../gossip/logger.js'
import type { Clock } from './clock.js'
import type { CommandResult } from './coordination/commands.js'
import type { CoordinationState, SessionEndReason } from './coordination/state.js'
import { ClusterStoppedError, SessionLostError } from './errors.js'
import type { LeaderSessions } from './leader-sessions.js'
import type { MeshCalls } from './mesh-calls.js'
import { remoteErrorName } from './mesh-calls.js'
import type { Proposer } from './proposer.js'

export const KEEPALIVE_METHOD = 'coord.keepalive'
/** Fraction of the TTL the holder gives up early, for clocks that run at different rates. */
export const LEASE_MARGIN = 0.1

export interface SessionKeeperOptions {
  readonly nodeId: string
  readonly ttlMs: number
  readonly panicAfterMs: number
  readonly raft: RaftNode<CommandResult>
  readonly state: CoordinationState
  readonly proposer: Proposer
  readonly leaderSessions: LeaderSessions
  readonly calls: MeshCalls
  readonly clock: Clock
  readonly log: Logger
}

export type SessionLossReason = 'lease-lapsed' | SessionEndReason | 'stopped'

export interface SessionKeeperEvents {
  opened: [string]
  /** The session is gone; everything held under it is lost. */
  lost: [{ session: string, reason: SessionLossReason }]
  /** No keep-alive answered for panicAfterMs. */
  panic: [{ reason: string, sinceMs: number }]
  /** Keep-alives are answered again after a panic. */
  recovered: []
}

export class SessionKeeper extends EventEmitter<SessionKeeperEvents> {
  private readonly o: SessionKeeperOptions
  private readonly intervalMs: number
  private id: string | null = null
  private deadline = -Infinity
  private lastAnswer = -Infinity
  private panicked = false
  private stopped = false
  private opening: Promise<string> | null = null
  private beat: NodeJS.Timeout | null = null
  private lapse: NodeJS.Timeout | null = null
  private panicTimer: NodeJS.Timeout | null = null

  constructor (o: SessionKeeperOptions) {
    super()
    this.o = o
    this.intervalMs = Math.max(20, Math.floor(Math.min(o.ttlMs, o.panicAfterMs) / 5))
    o.state.on('session-ended', e => { if (e.session === this.id) this.lose(e.reason) })
    o.state.on('restored', () => { if (this.id !== null && o.state.session(this.id) === undefined) this.lose('expired') })
    o.calls.handle(KEEPALIVE_METHOD, async (body, ctx) => {
      const session = new TextDecoder().decode(body)
      if (!session.startsWith(`${ctx.from}/`)) throw new SessionLostError(`node ${ctx.from} cannot keep session ${session} alive`)
      await o.leaderSessions.keepAlive(session, { timeoutMs: this.intervalMs * 4 })
      return new Uint8Array(0)
    })
  }

  /** The open session's id, or null while there is none. */
  get session (): string | null {
    return this.id
  }

  /** Monotonic time until which the current session's lease is certain. */
  get leaseDeadline (): number {
    return this.id === null ? -Infinity : this.deadline
  }

  /** True while the lease of `session` is certain (reads the monotonic clock: right even before timers run after a pause). */
  valid (session: string): boolean {
    return !this.stopped && session === this.id && this.o.clock.monotonic() < this.deadline
  }

  /** Opens a session (or returns the open one); resolves once its `open` is applied here. */
  async ensure (opts: { signal?: AbortSignal } = {}): Promise<string> {
    if (this.stopped) throw new ClusterStoppedError()
    if (this.id !== null) return this.id
    this.opening ??= this.open(opts).finally(() => { this.opening = null })
    return await this.opening
  }

  private async open (opts: { signal?: AbortSignal }): Promise<string> {
    const id = `${this.o.nodeId}/${randomBytes(6).toString('hex')}`
    const sentAt = this.o.clock.monotonic()
    const { result } = await this.o.proposer.submit(id, { op: 'open', node: this.o.nodeId, ttlMs: this.o.ttlMs }, { signal: opts.signal })
    if (!result.ok) throw new SessionLostError(`could not open a session: ${result.message}`)
    if (this.stopped) throw new ClusterStoppedError()
    // The leader counts a new session as heard when it applies the open, after sentAt.
    this.id = id
    this.extend(sentAt)
    this.answered()
    if (this.beat === null) this.nextBeat()
    this.o.log.debug({ session: id }, 'session opened')
    this.emit('opened', id)
    return id
  }

  /** Ends the session on the log (its locks are released at once) and stops. */
  async close (opts: { signal?: AbortSignal, timeoutMs?: number } = {}): Promise<void> {
    const id = this.id
    this.lose('stopped')
    this.stopped = true
    if (this.beat !== null) clearTimeout(this.beat)
    if (this.panicTimer !== null) clearTimeout(this.panicTimer)
    if (id !== null) {
      await this.o.proposer.submit(id, { op: 'close' }, { signal: opts.signal, timeoutMs: opts.timeoutMs ?? 5000 }).catch((err: unknown) => {
        this.o.log.warn({ session: id, ...errorFields(err) }, 'session not closed on the log; it will expire')
      })
    }
  }

  /**
   * Keep-alives go at whole multiples of intervalMs on the wall clock, so
   * every node's arrive at the leader together and share one leadership
   * round (LeaderSessions.keepAlive) instead of one round each.
   */
  private nextBeat (): void {
    if (this.stopped) return
    const wait = this.intervalMs - (this.o.clock.wall() % this.intervalMs)
    this.beat = setTimeout(() => {
      this.keepAlive()
      this.nextBeat()
    }, wait)
  }

  private keepAlive (): void {
    const id = this.id
    if (id === null) {
      if (!this.stopped) this.ensure().catch((err: unknown) => { this.o.log.debug(errorFields(err), 'session not reopened yet') })
      return
    }
    const sentAt = this.o.clock.monotonic()
    const { raft, calls, leaderSessions, nodeId } = this.o
    const leader = raft.leader
    if (leader === null) return
    const timeoutMs = this.intervalMs * 4
    const answer = leader === nodeId
      ? leaderSessions.keepAlive(id, { timeoutMs })
      : calls.call(leader, KEEPALIVE_METHOD, new TextEncoder().encode(id), { timeoutMs })
    answer.then(() => {
      if (id !== this.id) return
      this.answered()
      this.extend(sentAt)
    }, (err: unknown) => {
      if (id !== this.id) return
      if (err instanceof SessionLostError || remoteErrorName(err) === 'SessionLostError') this.lose('expired')
      else this.o.log.debug({ leader, ...errorFields(err) }, 'keep-alive not answered')
    })
  }

  private extend (sentAt: number): void {
    const now = this.o.clock.monotonic()
    // Continuous or dead: an answer that comes after the deadline revives nothing.
    if (now >= this.deadline && this.deadline !== -Infinity) {
      this.lose('lease-lapsed')
      return
    }
    this.deadline = Math.max(this.deadline, sentAt + this.o.ttlMs * (1 - LEASE_MARGIN))
    if (this.lapse !== null) clearTimeout(this.lapse)
    this.lapse = setTimeout(() => { if (this.o.clock.monotonic() >= this.deadline) this.lose('lease-lapsed') }, Math.max(0, this.deadline - now))
  }

  private lose (reason: SessionLossReason): void {
    const id = this.id
    if (id === null) return
    this.id = null
    this.deadline = -Infinity
    if (this.lapse !== null) clearTimeout(this.lapse)
    this.lapse = null
    this.o.log.info({ session: id, reason }, 'session lost')
    this.emit('lost', { session: id, reason })
  }

  /** A majority just confirmed this node: the panic clock starts again. */
  private answered (): void {
    this.lastAnswer = this.o.clock.monotonic()
    if (this.panicked) {
      this.panicked = false
      this.emit('recovered')
    }
    if (this.panicTimer !== null) clearTimeout(this.panicTimer)
    this.panicTimer = setTimeout(() => { this.checkPanic() }, this.o.panicAfterMs)
  }

  private checkPanic (): void {
    if (this.panicked || this.stopped) return
    const silent = this.o.clock.monotonic() - this.lastAnswer
    if (silent < this.o.panicAfterMs) {
      this.panicTimer = setTimeout(() => { this.checkPanic() }, this.o.panicAfterMs - silent)
      return
    }
    this.panicked = true
    this.emit('panic', { reason: `no majority confirmed this node for ${Math.round(silent)} ms (panicAfterMs ${this.o.panicAfterMs})`, sinceMs: Math.round(silent) })
  }
}
