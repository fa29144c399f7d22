/**
 * Gets a coordination command applied, from any node.
 *
 * The command is sent to the leader (proposed directly when this node
 * leads, forwarded over the mesh otherwise) and the call resolves when the
 * command's answer is applied on THIS node, so a caller reads its own
 * writes. If the leader changes, stops answering or refuses, the same bytes
 * (same client and sequence number) are sent again to whoever leads now;
 * the state machine answers a repeat from its stored answer instead of
 * applying it twice. A new leader being known re-sends at once, so a call
 * forwarded to a paused leader does not wait out its timeout.
 */
import { fromString } from 'uint8arrays/from-string'
import { toString } from 'uint8arrays/to-string'
import type { RaftNode } from '../raft/index.js'
import { NotLeaderError } from '../raft/index.js'
import type { Logger } from '../gossip/logger.js'
import { errorFields } from '../gossip/logger.js'
import type { Clock } from './clock.js'
import { encodeEnvelope, InvalidCommandError, leaderEntry, LEADER_OPS, type Command, type CommandResult } from './coordination/commands.js'
import type { CoordinationState } from './coordination/state.js'
import { ClusterStoppedError, TimeoutError } from './errors.js'
import type { CallContext, MeshCalls } from './mesh-calls.js'

export const PROPOSE_METHOD = 'coord.propose'
/** A forwarded proposal not answered this long is sent again (to the same or a new leader). */
const FORWARD_TIMEOUT_MS = 3000
const RETRY_BASE_MS = 50
const RETRY_MAX_MS = 1000
const DEFAULT_TIMEOUT_MS = 30_000

export interface SubmitOptions {
  readonly signal?: AbortSignal
  /** Give up after this long (the outcome is then unknown). Default 30 s. */
  readonly timeoutMs?: number
}

export interface Applied {
  readonly result: CommandResult
  /** Index of the entry that answered. */
  readonly index: number
}

interface Pending {
  readonly client: string
  readonly seq: number
  readonly op: Command['op']
  readonly bytes: Uint8Array
  readonly resolve: (a: Applied) => void
  readonly reject: (e: Error) => void
  retryMs: number
  retry: NodeJS.Timeout | null
}

export interface ProposerOptions {
  readonly nodeId: string
  readonly raft: RaftNode<CommandResult>
  readonly calls: MeshCalls
  readonly state: CoordinationState
  readonly clock: Clock
  readonly log: Logger
}

export class Proposer {
  private readonly o: ProposerOptions
  private seq = 0
  private lastStamp = 0
  private readonly pending = new Map<number, Pending>()
  private closed = false

  constructor (o: ProposerOptions) {
    this.o = o
    o.state.on('answer', a => {
      const p = this.pending.get(a.seq)
      if (p !== undefined && p.client === a.client) this.settle(p, () => { p.resolve({ result: a.result, index: a.index }) })
    })
    o.state.on('restored', () => { this.afterRestore() })
    o.raft.on('state', () => { this.resendAll() })
    o.calls.handle(PROPOSE_METHOD, async (body, ctx) => await this.serveForwarded(body, ctx))
  }

  /** Applies `cmd` as `client` and resolves with its answer once it is applied here. */
  async submit (client: string, cmd: Command, opts: SubmitOptions = {}): Promise<Applied> {
    if (this.closed) throw new ClusterStoppedError()
    opts.signal?.throwIfAborted()
    const seq = ++this.seq
    const lo = this.lowestPending(client) ?? seq
    const bytes = encodeEnvelope({ c: client, s: seq, lo, cmd })
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    return await new Promise<Applied>((resolve, reject) => {
      const onAbort = (): void => { this.settle(p, () => { reject(opts.signal?.reason as Error) }) }
      const timer = setTimeout(() => {
        this.settle(p, () => { reject(new TimeoutError(`${cmd.op} not applied within ${timeoutMs} ms; its outcome is unknown`)) })
      }, timeoutMs)
      const done = (): void => { clearTimeout(timer); opts.signal?.removeEventListener('abort', onAbort) }
      const p: Pending = {
        client,
        seq,
        op: cmd.op,
        bytes,
        resolve: a => { done(); resolve(a) },
        reject: e => { done(); reject(e) },
        retryMs: RETRY_BASE_MS,
        retry: null
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      this.pending.set(seq, p)
      this.send(p)
    })
  }

  /** The leader's side of a forwarded proposal: validate, stamp, propose; answers with the entry's place once applied here. */
  async proposeAsLeader (envelope: Uint8Array, from: string | null): Promise<{ index: number, term: number }> {
    if (!this.o.raft.isLeader) throw new NotLeaderError(this.o.raft.leader)
    const { data, envelope: env } = leaderEntry(this.nextStamp(), envelope)
    if (from !== null && (LEADER_OPS.has(env.cmd.op) || !env.c.startsWith(`${from}/`))) {
      throw new InvalidCommandError(`node ${from} may only propose commands of its own sessions`)
    }
    const { index, term } = await this.o.raft.propose(data, { timeoutMs: FORWARD_TIMEOUT_MS })
    return { index, term }
  }

  /** Leader only: one of the leader's own commands (LEADER_OPS: expiring sessions and claims, waking queues). */
  async own (cmd: Command): Promise<number> {
    return (await this.proposeAsLeader(encodeEnvelope({ c: '', s: 0, lo: 0, cmd }), null)).index
  }

  /** Rejects everything still waiting. */
  close (): void {
    this.closed = true
    for (const p of [...this.pending.values()]) this.settle(p, () => { p.reject(new ClusterStoppedError()) })
  }

  /** The client's oldest call still waiting: its first in `pending`, which holds calls in the order of their sequence numbers. */
  private lowestPending (client: string): number | undefined {
    for (const p of this.pending.values()) if (p.client === client) return p.seq
    return undefined
  }

  private nextStamp (): number {
    // A new leader's clock may be behind its predecessor's: never go back.
    this.lastStamp = Math.max(this.lastStamp + 1e-3, this.o.clock.wall(), this.o.state.now)
    return this.lastStamp
  }

  private async serveForwarded (body: Uint8Array, ctx: CallContext): Promise<Uint8Array> {
    const at = await this.proposeAsLeader(body, ctx.from)
    return fromString(`${at.index} ${at.term}`)
  }

  private send (p: Pending): void {
    if (this.closed || !this.pending.has(p.seq)) return
    const { raft, calls, nodeId } = this.o
    const leader = raft.leader
    // No leader known: the next state change sends it.
    if (leader === null) return
    const attempt = leader === nodeId
      ? this.proposeAsLeader(p.bytes, null)
      : calls.call(leader, PROPOSE_METHOD, p.bytes, { timeoutMs: FORWARD_TIMEOUT_MS }).then(reply => { this.learnCommitted(reply) })
    attempt.then(() => { p.retryMs = RETRY_BASE_MS }, (err: unknown) => {
      if (!this.pending.has(p.seq)) return
      if (err instanceof InvalidCommandError) {
        this.settle(p, () => { p.reject(err) })
        return
      }
      this.o.log.debug({ seq: p.seq, leader, ...errorFields(err) }, 'proposal not taken; sending again')
      this.scheduleRetry(p)
    })
  }

  /**
   * The leader applied our entry, so it is committed: apply it here now
   * rather than when the leader's commit notice comes (held back up to
   * 2 ms while other entries are in flight). Raft checks that our entry
   * there has the same term. An answer without a term (a leader of an
   * older version) or one we cannot read only costs that wait.
   */
  private learnCommitted (reply: Uint8Array): void {
    const m = /^(\d{1,15}) (\d{1,15})$/.exec(toString(reply))
    if (m !== null) this.o.raft.learnCommitted(Number(m[1]), Number(m[2]))
  }

  private scheduleRetry (p: Pending): void {
    if (p.retry !== null) return
    const ms = p.retryMs
    p.retryMs = Math.min(RETRY_MAX_MS, p.retryMs * 2)
    p.retry = setTimeout(() => { p.retry = null; this.send(p) }, ms)
  }

  private resendAll (): void {
    if (this.o.raft.leader === null) return
    for (const p of this.pending.values()) {
      if (p.retry !== null) { clearTimeout(p.retry); p.retry = null }
      p.retryMs = RETRY_BASE_MS
      this.send(p)
    }
  }

  /**
   * A snapshot may have covered answers this node never applied one by one.
   * A command other than `open` is only sent once its session's open was
   * applied here, so a session missing from the snapshot has ended. An
   * `open` stays pending: sent again, it at worst opens a fresh session.
   */
  private afterRestore (): void {
    const index = this.o.raft.status().appliedIndex
    for (const p of [...this.pending.values()]) {
      const answer = this.o.state.storedAnswer(p.client, p.seq)
      if (answer !== undefined) {
        this.settle(p, () => { p.resolve({ result: answer, index }) })
      } else if (p.op !== 'open' && this.o.state.session(p.client) === undefined) {
        this.settle(p, () => { p.resolve({ result: { ok: false, error: 'no-session', message: `session ${p.client} is not open` }, index }) })
      }
    }
  }

  private settle (p: Pending, fn: () => void): void {
    if (!this.pending.delete(p.seq)) return
    if (p.retry !== null) clearTimeout(p.retry)
    fn()
  }
}
