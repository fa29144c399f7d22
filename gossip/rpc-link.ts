/**
 * The caller's side of the mesh RPC towards one member: one stream, opened
 * when the link is made and kept for every call after, requests multiplexed
 * on it by id and responses read back from it.
 *
 * A link does not outlive its stream. When the stream cannot be opened,
 * breaks, or the member fails or leaves, every pending call is rejected at
 * once and the link is dropped; the next call makes a new one. A caller that
 * forwards to a leader learns at once that it must re-route, instead of
 * waiting out a timeout.
 */
import './polyfill.js'
import type { Stream } from '@libp2p/interface'
import { PeerUnavailableError, RemoteCallError, RpcOverloadedError, RpcTimeoutError, UnknownMethodError } from './errors.js'
import { FrameQueue } from './frame-queue.js'
import { FrameDecoder } from './length-prefix.js'
import { errorFields } from './logger.js'
import { decodeRpcFrame, encodeRpcFrame, FailureKind, type RpcFrame } from './rpc-codec.js'
import { batchWindowUpdates } from './window-updates.js'

export interface RpcLinkLimits {
  readonly maxPendingCalls: number
  readonly maxQueuedBytes: number
  readonly maxBodyBytes: number
  readonly maxFrameBytes: number
}

export interface RpcLinkCounters {
  streamsOpened: number
  badFrames: number
  /** Responses to calls no longer pending (timed out or aborted first). */
  lateResponses: number
}

interface PendingCall {
  readonly method: string
  readonly resolve: (body: Uint8Array) => void
  readonly reject: (err: unknown) => void
  readonly cleanup: () => void
}

export class RpcLink {
  readonly nodeId: string
  readonly peerId: string
  private readonly pending = new Map<number, PendingCall>()
  private readonly out: FrameQueue
  private readonly limits: RpcLinkLimits
  private readonly counters: RpcLinkCounters
  private readonly warn: (fields: Record<string, unknown>, msg: string) => void
  private readonly onDown: (link: RpcLink) => void
  private stream: Stream | null = null
  private nextId = 1
  private down = false

  /**
   * Starts opening the stream at once; `onDown` is called once, when the
   * link fails, so its owner forgets it. `warn` is rate limited by the owner.
   */
  constructor (nodeId: string, peerId: string, open: (peerId: string) => Promise<Stream>, limits: RpcLinkLimits, counters: RpcLinkCounters, warn: (fields: Record<string, unknown>, msg: string) => void, onDown: (link: RpcLink) => void) {
    this.nodeId = nodeId
    this.peerId = peerId
    this.limits = limits
    this.counters = counters
    this.warn = warn
    this.onDown = onDown
    this.out = new FrameQueue(limits.maxQueuedBytes)
    open(peerId).then(
      stream => { this.opened(stream) },
      err => { this.fail(new PeerUnavailableError(nodeId, 'unreachable', `cannot open an rpc stream: ${(err as Error).message}`, { cause: err })) }
    )
  }

  get pendingCalls (): number {
    return this.pending.size
  }

  /** Sends one request; settles with the response, or rejects (see MeshRpc.call). */
  async call (method: string, body: Uint8Array, timeoutMs: number, signal: AbortSignal | undefined): Promise<Uint8Array> {
    if (this.pending.size >= this.limits.maxPendingCalls) {
      throw new RpcOverloadedError(this.nodeId, 'local', `${this.pending.size} calls to member ${this.nodeId} are already pending (limit ${this.limits.maxPendingCalls})`)
    }
    const id = this.nextId++
    if (!this.out.offer(encodeRpcFrame({ t: 'request', id, method, body }))) {
      throw new RpcOverloadedError(this.nodeId, 'local', `${this.out.queuedBytes} bytes are already queued to member ${this.nodeId} (limit ${this.out.maxQueuedBytes})`)
    }
    return await new Promise<Uint8Array>((resolve, reject) => {
      const timer = timeoutMs > 0 && Number.isFinite(timeoutMs)
        ? setTimeout(() => { this.giveUp(id, new RpcTimeoutError(this.nodeId, method, timeoutMs)) }, timeoutMs)
        : null
      timer?.unref()
      const onAbort = (): void => { this.giveUp(id, signal?.reason) }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.pending.set(id, {
        method,
        resolve,
        reject,
        cleanup: () => {
          if (timer !== null) clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
        }
      })
    })
  }

  /** Rejects every pending call with `err` and drops the stream; the link is done. */
  fail (err: Error): void {
    if (this.down) return
    this.down = true
    this.out.clear()
    const calls = [...this.pending.values()]
    this.pending.clear()
    for (const p of calls) {
      p.cleanup()
      p.reject(err)
    }
    this.stream?.abort(err)
    this.stream = null
    this.onDown(this)
  }

  private opened (stream: Stream): void {
    if (this.down) {
      stream.abort(new Error('rpc link went down while its stream was opening'))
      return
    }
    // The callee may refuse the stream (say, before it has admitted us as a
    // member) before this runs: its close has then already been dispatched
    // and the listeners below would never hear it.
    if (stream.status !== 'open' || stream.remoteWriteStatus !== 'writable') {
      this.fail(new PeerUnavailableError(this.nodeId, 'stream-closed', `the member closed the stream as it opened (${stream.status})`))
      return
    }
    this.counters.streamsOpened++
    this.stream = stream
    batchWindowUpdates(stream)
    const decoder = new FrameDecoder(this.limits.maxFrameBytes)
    stream.addEventListener('message', evt => {
      let frames: Uint8Array[]
      try {
        frames = decoder.push(evt.data)
      } catch (err) {
        this.counters.badFrames++
        this.warn({ peer: this.nodeId, ...errorFields(err) }, 'aborting an rpc stream with broken framing')
        this.fail(new PeerUnavailableError(this.nodeId, 'stream-closed', `the member broke the framing: ${(err as Error).message}`))
        return
      }
      for (const f of frames) this.onFrame(f)
    })
    stream.addEventListener('close', evt => {
      this.fail(new PeerUnavailableError(this.nodeId, 'stream-closed', evt.error?.message ?? 'the stream closed'))
    })
    // The member may close its writing side only when it goes away; nothing more can come back.
    stream.addEventListener('remoteCloseWrite', () => {
      this.fail(new PeerUnavailableError(this.nodeId, 'stream-closed', 'the member closed the stream'))
    })
    this.out.attach(stream)
  }

  private onFrame (frame: Uint8Array): void {
    let f: RpcFrame
    try {
      f = decodeRpcFrame(frame, this.limits.maxBodyBytes)
      if (f.t !== 'result' && f.t !== 'failure') throw new Error(`a ${f.t} frame on the caller's side`)
    } catch (err) {
      this.counters.badFrames++
      this.warn({ peer: this.nodeId, ...errorFields(err) }, 'dropping a bad rpc response')
      return
    }
    const p = this.pending.get(f.id)
    if (p === undefined) {
      this.counters.lateResponses++
      return
    }
    this.pending.delete(f.id)
    p.cleanup()
    if (f.t === 'result') p.resolve(f.body)
    else p.reject(this.failure(p.method, f))
  }

  private failure (method: string, f: Extract<RpcFrame, { t: 'failure' }>): Error {
    switch (f.kind) {
      case FailureKind.UnknownMethod: return new UnknownMethodError(this.nodeId, method)
      case FailureKind.Busy: return new RpcOverloadedError(this.nodeId, 'remote', `member ${this.nodeId} refused ${method}: ${f.message}`)
      default: return new RemoteCallError(this.nodeId, method, f.name, f.code, f.message)
    }
  }

  /** The caller stopped waiting: settle now and tell the member, so its handler's signal fires. */
  private giveUp (id: number, reason: unknown): void {
    const p = this.pending.get(id)
    if (p === undefined) return
    this.pending.delete(id)
    p.cleanup()
    p.reject(reason)
    // Best effort: with the queue full the handler runs to its end, which is harmless.
    this.out.offer(encodeRpcFrame({ t: 'cancel', id }))
  }
}
