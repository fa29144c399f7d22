/**
 * Request/response calls between mesh members (`/raftmesh/rpc/1.0.0`): a
 * follower forwarding a proposal to the Raft leader, a session keep-alive,
 * a learner asking to join. A call names a member by node id and a method;
 * the member runs the handler registered for that method and its answer (or
 * the error it threw) comes back.
 *
 * Each caller keeps one long-lived stream per member it calls (see
 * rpc-link.ts) with calls multiplexed on it by id; opening a stream per call
 * would cost about ten times the round trip. Calls to a member that fails,
 * leaves, or whose stream breaks are rejected at once with
 * PeerUnavailableError, never left to their timeout.
 *
 * Inbound streams are served only for live members (peers that passed the
 * join handshake), as the Raft transport does; see rpc-inbound.ts.
 */
import './polyfill.js'
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { InvalidArgumentError, PeerUnavailableError, RpcClosedError } from './errors.js'
import { type Logger } from './logger.js'
import type { Member } from './membership.js'
import type { MeshNode } from './node.js'
import { checkMethodName, FRAME_OVERHEAD_BYTES } from './rpc-codec.js'
import { InboundCalls, type InboundCounters, type RpcHandler } from './rpc-inbound.js'
import { RpcLink, type RpcLinkCounters, type RpcLinkLimits } from './rpc-link.js'

export type { RpcContext, RpcHandler } from './rpc-inbound.js'

export const RPC_PROTOCOL = '/raftmesh/rpc/1.0.0'

export interface MeshRpcOptions {
  /** Largest request or response body, both ways. Default 1 MiB. */
  readonly maxBodyBytes?: number
  /**
   * Calls pending towards one member before more are refused with
   * RpcOverloadedError. Default 1024, the callee's default
   * `maxConcurrentPerCaller`, so a caller within it is never refused as busy.
   */
  readonly maxPendingCalls?: number
  /** Bytes queued for sending on one stream before more are refused. Default 16 MiB. */
  readonly maxQueuedBytes?: number
  /** Calls from one member running here at once; more are refused as busy. Default 1024. */
  readonly maxConcurrentPerCaller?: number
  /** Timeout of a call that passes none. Default 30 s. */
  readonly defaultTimeoutMs?: number
  /** Deadline for opening the stream to a member. Default 5 s. */
  readonly openTimeoutMs?: number
}

export interface CallOptions {
  /** Aborting rejects the call with the signal's reason and cancels it on the member. */
  readonly signal?: AbortSignal
  /** Rejects with RpcTimeoutError after this long. Default the endpoint's `defaultTimeoutMs`. */
  readonly timeoutMs?: number
}

export interface MeshRpcStats {
  /** Calls this node made. */
  readonly calls: number
  /** Of those, the ones that rejected (for any reason). */
  readonly failed: number
  /** Calls pending now. */
  readonly pending: number
  /** Requests this node's handlers ran to the end. */
  readonly served: number
  /** Of those, the ones whose handler threw. */
  readonly handlerErrors: number
  /** Requests for methods with no handler here. */
  readonly unknownMethod: number
  /** Requests refused because too many from their caller were running. */
  readonly busy: number
  /** Cancel frames received: callers that gave up on a call here. */
  readonly cancels: number
  /** Inbound frames dropped (undecodable, invalid, wrong direction, broken framing), both sides. */
  readonly badFrames: number
  /** Inbound streams refused because the peer is not a live member. */
  readonly notMember: number
  /** Responses that came after their call had timed out or been aborted. */
  readonly lateResponses: number
  /** Outbound streams opened (one per member called, plus one per reconnection). */
  readonly streamsOpened: number
}

export class MeshRpc {
  readonly mesh: MeshNode
  private readonly log: Logger
  private readonly handlers = new Map<string, RpcHandler>()
  private readonly links = new Map<string, RpcLink>()
  private readonly inbound = new Set<InboundCalls>()
  private readonly linkLimits: RpcLinkLimits
  private readonly maxConcurrentPerCaller: number
  private readonly defaultTimeoutMs: number
  private readonly openTimeoutMs: number
  private readonly linkCounters: RpcLinkCounters = { streamsOpened: 0, badFrames: 0, lateResponses: 0 }
  private readonly inboundCounters: InboundCounters = { served: 0, handlerErrors: 0, unknownMethod: 0, busy: 0, cancels: 0, badFrames: 0 }
  private calls = 0
  private failed = 0
  private notMember = 0
  private closed = false
  private lastWarn = 0
  private readonly onDown = (m: Member): void => {
    const err = new PeerUnavailableError(m.nodeId, m.state === 'left' ? 'left' : 'failed', m.state === 'left' ? 'the member left' : `the member failed: ${m.failure ?? 'unknown'}`)
    this.links.get(m.nodeId)?.fail(err)
    for (const s of this.inbound) if (s.peerId === m.peerId) s.abort(err)
  }

  private constructor (mesh: MeshNode, opts: MeshRpcOptions) {
    this.mesh = mesh
    this.log = mesh.log.child({ module: 'rpc' })
    const maxBodyBytes = count('maxBodyBytes', opts.maxBodyBytes, 1024 * 1024)
    this.linkLimits = {
      maxBodyBytes,
      maxFrameBytes: maxBodyBytes + FRAME_OVERHEAD_BYTES,
      maxPendingCalls: count('maxPendingCalls', opts.maxPendingCalls, 1024),
      maxQueuedBytes: count('maxQueuedBytes', opts.maxQueuedBytes, 16 * 1024 * 1024)
    }
    this.maxConcurrentPerCaller = count('maxConcurrentPerCaller', opts.maxConcurrentPerCaller, 1024)
    this.defaultTimeoutMs = count('defaultTimeoutMs', opts.defaultTimeoutMs, 30_000)
    this.openTimeoutMs = count('openTimeoutMs', opts.openTimeoutMs, 5000)
    mesh.membership.on('failed', this.onDown)
    mesh.membership.on('leave', this.onDown)
  }

  /** Registers the protocol handler on the mesh node and returns the endpoint. */
  static async create (mesh: MeshNode, opts: MeshRpcOptions = {}): Promise<MeshRpc> {
    const rpc = new MeshRpc(mesh, opts)
    await mesh.libp2p.handle(RPC_PROTOCOL, (stream, conn) => { rpc.onStream(stream, conn) }, { maxInboundStreams: 8, force: true })
    return rpc
  }

  /**
   * Serves `method` with `handler`: one handler per method name (a second
   * registration throws InvalidArgumentError). What the handler resolves
   * with is the caller's answer; what it throws reaches the caller as a
   * RemoteCallError carrying the error's name, code and message.
   */
  handle (method: string, handler: RpcHandler): void {
    checkMethodName(method)
    if (typeof handler !== 'function') throw new InvalidArgumentError('handler must be a function')
    if (this.handlers.has(method)) throw new InvalidArgumentError(`method ${method} already has a handler`)
    this.handlers.set(method, handler)
  }

  /**
   * Calls `method` on member `nodeId` with `body`; resolves with the
   * handler's answer. Rejects with:
   * - PeerUnavailableError: the member is not live now, or fails, leaves or
   *   its stream breaks while the call is pending (at once, not at the timeout);
   * - RpcTimeoutError after `timeoutMs` (Infinity: no timeout); the signal's reason when it aborts;
   * - RemoteCallError when the handler threw; UnknownMethodError;
   * - RpcOverloadedError when a queue bound is reached on either side;
   * - InvalidArgumentError for a call to this node itself (handle those
   *   locally), a bad method name or an oversized body; RpcClosedError.
   */
  async call (nodeId: string, method: string, body: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    this.calls++
    try {
      return await this.callOnce(nodeId, method, body, opts)
    } catch (err) {
      this.failed++
      throw err
    }
  }

  stats (): MeshRpcStats {
    let pending = 0
    for (const l of this.links.values()) pending += l.pendingCalls
    return {
      calls: this.calls,
      failed: this.failed,
      pending,
      ...this.inboundCounters,
      badFrames: this.inboundCounters.badFrames + this.linkCounters.badFrames,
      notMember: this.notMember,
      lateResponses: this.linkCounters.lateResponses,
      streamsOpened: this.linkCounters.streamsOpened
    }
  }

  /**
   * Rejects pending calls with RpcClosedError, aborts the streams of callers
   * (their handlers' signals fire) and unregisters the protocol. Close it
   * before stopping the mesh node.
   */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.mesh.membership.off('failed', this.onDown)
    this.mesh.membership.off('leave', this.onDown)
    const err = new RpcClosedError('the rpc endpoint was closed')
    for (const link of [...this.links.values()]) link.fail(err)
    for (const s of [...this.inbound]) s.abort(err)
    if (this.mesh.libp2p.status === 'started') await this.mesh.libp2p.unhandle(RPC_PROTOCOL).catch(() => {})
  }

  private async callOnce (nodeId: string, method: string, body: Uint8Array, opts: CallOptions): Promise<Uint8Array> {
    if (this.closed) throw new RpcClosedError('the rpc endpoint is closed')
    checkMethodName(method)
    if (!(body instanceof Uint8Array)) throw new InvalidArgumentError('body must be a Uint8Array')
    if (body.byteLength > this.linkLimits.maxBodyBytes) throw new InvalidArgumentError(`body of ${body.byteLength} bytes (limit ${this.linkLimits.maxBodyBytes})`)
    if (nodeId === this.mesh.nodeId) throw new InvalidArgumentError(`call ${method} to this node itself (${nodeId}): handle it locally`)
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs
    if (!(timeoutMs > 0)) throw new InvalidArgumentError(`timeoutMs must be positive, got ${timeoutMs}`)
    opts.signal?.throwIfAborted()
    const peerId = this.mesh.membership.peerOf(nodeId)
    if (peerId === null) throw new PeerUnavailableError(nodeId, 'not-member', 'not a live member')
    let link = this.links.get(nodeId)
    if (link !== undefined && link.peerId !== peerId) {
      // The node came back with a new identity (new data directory).
      link.fail(new PeerUnavailableError(nodeId, 'failed', 'the member came back as another peer'))
      link = undefined
    }
    if (link === undefined) {
      link = new RpcLink(nodeId, peerId, async p => await this.openStream(p), this.linkLimits, this.linkCounters, (fields, msg) => { this.warn(fields, msg) }, l => {
        if (this.links.get(l.nodeId) === l) this.links.delete(l.nodeId)
      })
      this.links.set(nodeId, link)
    }
    return await link.call(method, body, timeoutMs, opts.signal)
  }

  private async openStream (peerId: string): Promise<Stream> {
    return await this.mesh.libp2p.dialProtocol(peerIdFromString(peerId), RPC_PROTOCOL, { signal: AbortSignal.timeout(this.openTimeoutMs) })
  }

  private onStream (stream: Stream, conn: Connection): void {
    if (this.closed) {
      stream.abort(new RpcClosedError('the rpc endpoint is closed'))
      return
    }
    const peerId = conn.remotePeer.toString()
    const from = this.mesh.membership.nodeIdOfPeer(peerId)
    if (from === null) {
      this.notMember++
      this.warn({ peerId }, 'refusing an rpc stream from a peer that is not a member')
      stream.abort(new PeerUnavailableError(peerId, 'not-member', 'only live members may call'))
      return
    }
    const calls = new InboundCalls(stream, peerId, from, {
      handlers: this.handlers,
      memberOf: p => this.mesh.membership.nodeIdOfPeer(p),
      limits: {
        maxConcurrent: this.maxConcurrentPerCaller,
        maxQueuedBytes: this.linkLimits.maxQueuedBytes,
        maxBodyBytes: this.linkLimits.maxBodyBytes,
        maxFrameBytes: this.linkLimits.maxFrameBytes
      },
      counters: this.inboundCounters,
      warn: (fields, msg) => { this.warn(fields, msg) },
      log: this.log
    })
    this.inbound.add(calls)
    stream.addEventListener('close', () => { this.inbound.delete(calls) })
  }

  /** Warns at most once a second: a hostile peer must not turn the log into the attack. */
  private warn (fields: Record<string, unknown>, msg: string): void {
    const now = Date.now()
    if (now - this.lastWarn < 1000) return
    this.lastWarn = now
    this.log.warn({ ...fields, badFrames: this.stats().badFrames, notMember: this.notMember }, msg)
  }
}

function count (name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt
  if (!Number.isInteger(v) || v <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got ${v}`)
  return v
}
