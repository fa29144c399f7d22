/**
 * The callee's side of the mesh RPC for one caller's stream: requests are
 * decoded, validated and run concurrently by their method's handler, and
 * each response is written back on the same stream.
 *
 * Distrusted throughout: every frame must come from a peer that is still the
 * live member the stream was accepted from; a frame that does not decode
 * exactly is dropped and counted; framing that breaks aborts the stream.
 * A caller may run at most `maxConcurrent` calls at once here; more are
 * refused as busy without running, and a caller that does not read its
 * responses loses its stream once `maxQueuedBytes` of them wait.
 */
import './polyfill.js'
import type { Stream } from '@libp2p/interface'
import { InvalidArgumentError, ProtocolFrameError } from './errors.js'
import { FrameQueue } from './frame-queue.js'
import { FrameDecoder } from './length-prefix.js'
import { errorFields, type Logger } from './logger.js'
import { decodeRpcFrame, encodeRpcFrame, FailureKind, type RpcFrame } from './rpc-codec.js'
import { batchWindowUpdates } from './window-updates.js'

/** What a handler is told about the call it serves. */
export interface RpcContext {
  /** The caller's node id, as it handshook with this node. */
  readonly from: string
  /** Fires when the caller gives up on the call, its stream goes away, or the RPC endpoint closes. */
  readonly signal: AbortSignal
}

export type RpcHandler = (body: Uint8Array, ctx: RpcContext) => Promise<Uint8Array>

export interface InboundLimits {
  readonly maxConcurrent: number
  readonly maxQueuedBytes: number
  readonly maxBodyBytes: number
  readonly maxFrameBytes: number
}

export interface InboundCounters {
  /** Requests whose handler ran to the end (resolved or threw). */
  served: number
  /** Of those, the ones whose handler threw. */
  handlerErrors: number
  unknownMethod: number
  busy: number
  /** Cancel frames received (the caller gave up on a call). */
  cancels: number
  badFrames: number
}

export interface InboundDeps {
  readonly handlers: ReadonlyMap<string, RpcHandler>
  /** The node id of the live member on `peerId` now, or null. */
  readonly memberOf: (peerId: string) => string | null
  readonly limits: InboundLimits
  readonly counters: InboundCounters
  /** Logs a warning about the peer (rate limited by the owner). */
  readonly warn: (fields: Record<string, unknown>, msg: string) => void
  readonly log: Logger
}

export class InboundCalls {
  readonly stream: Stream
  readonly peerId: string
  /** The caller's node id. */
  readonly from: string
  private readonly deps: InboundDeps
  private readonly out: FrameQueue
  private readonly running = new Map<number, CallAbort>()
  private ended = false

  constructor (stream: Stream, peerId: string, from: string, deps: InboundDeps) {
    this.stream = stream
    this.peerId = peerId
    this.from = from
    this.deps = deps
    this.out = new FrameQueue(deps.limits.maxQueuedBytes)
    batchWindowUpdates(stream)
    const decoder = new FrameDecoder(deps.limits.maxFrameBytes)
    stream.addEventListener('message', evt => {
      let frames: Uint8Array[]
      try {
        frames = decoder.push(evt.data)
      } catch (err) {
        deps.counters.badFrames++
        deps.warn({ peer: from, ...errorFields(err) }, 'aborting an rpc stream with broken framing')
        this.abort(err as Error)
        return
      }
      for (const f of frames) {
        if (this.ended) return
        this.onFrame(f)
      }
    })
    stream.addEventListener('close', evt => { this.end(evt.error ?? new Error('the caller closed its rpc stream')) })
    this.out.attach(stream)
  }

  /** Aborts the stream: running handlers' signals fire with `reason`. */
  abort (reason: Error): void {
    this.end(reason)
    this.stream.abort(reason)
  }

  private end (reason: Error): void {
    if (this.ended) return
    this.ended = true
    this.out.clear()
    for (const ac of this.running.values()) ac.abort(reason)
    this.running.clear()
  }

  private onFrame (frame: Uint8Array): void {
    const { counters, limits, handlers } = this.deps
    if (this.deps.memberOf(this.peerId) !== this.from) {
      this.abort(new ProtocolFrameError(`peer ${this.peerId} is no longer the live member ${this.from}`))
      return
    }
    let f: RpcFrame
    try {
      f = decodeRpcFrame(frame, limits.maxBodyBytes)
      if (f.t === 'request' && this.running.has(f.id)) throw new ProtocolFrameError(`call id ${f.id} is already running`)
      if (f.t !== 'request' && f.t !== 'cancel') throw new ProtocolFrameError(`a ${f.t} frame on the callee's side`)
    } catch (err) {
      counters.badFrames++
      this.deps.warn({ peer: this.from, ...errorFields(err) }, 'dropping a bad rpc request')
      return
    }
    if (f.t === 'cancel') {
      counters.cancels++
      // A cancel for a call already answered crossed its response: nothing to do.
      this.running.get(f.id)?.abort(new DOMException(`${this.from} cancelled the call`, 'AbortError'))
      return
    }
    const handler = handlers.get(f.method)
    if (handler === undefined) {
      counters.unknownMethod++
      this.reply({ t: 'failure', id: f.id, kind: FailureKind.UnknownMethod, name: 'UnknownMethodError', code: 'ERR_UNKNOWN_METHOD', message: `no handler for ${f.method}` })
    } else if (this.running.size >= limits.maxConcurrent) {
      counters.busy++
      this.reply({ t: 'failure', id: f.id, kind: FailureKind.Busy, name: 'RpcOverloadedError', code: 'ERR_RPC_OVERLOADED', message: `${this.running.size} of its calls are already running (limit ${limits.maxConcurrent})` })
    } else {
      void this.run(f.id, f.method, f.body, handler)
    }
  }

  private async run (id: number, method: string, body: Uint8Array, handler: RpcHandler): Promise<void> {
    const ac = new CallAbort()
    this.running.set(id, ac)
    let response: RpcFrame
    try {
      const result: unknown = await handler(body, { from: this.from, get signal () { return ac.signal } })
      if (!(result instanceof Uint8Array)) throw new InvalidArgumentError(`the handler of ${method} resolved with ${typeof result}, not bytes`)
      if (result.byteLength > this.deps.limits.maxBodyBytes) throw new InvalidArgumentError(`the handler of ${method} resolved with ${result.byteLength} bytes (limit ${this.deps.limits.maxBodyBytes})`)
      response = { t: 'result', id, body: result }
    } catch (err) {
      this.deps.counters.handlerErrors++
      response = failureOf(id, err)
      this.deps.log.debug({ peer: this.from, method, ...errorFields(err) }, 'rpc handler threw')
    } finally {
      this.deps.counters.served++
      if (this.running.get(id) === ac) this.running.delete(id)
    }
    // Nobody waits for the response of a cancelled call.
    if (!ac.aborted) this.reply(response)
  }

  private reply (f: RpcFrame): void {
    if (this.ended) return
    if (!this.out.offer(encodeRpcFrame(f))) {
      this.deps.warn({ peer: this.from, queuedBytes: this.out.queuedBytes }, 'aborting an rpc stream whose caller does not read its responses')
      this.abort(new ProtocolFrameError(`more than ${this.out.maxQueuedBytes} bytes of responses unread`))
    }
  }
}

function failureOf (id: number, err: unknown): RpcFrame {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    return { t: 'failure', id, kind: FailureKind.Handler, name: String(err.name), code: typeof code === 'string' ? code : '', message: String(err.message) }
  }
  return { t: 'failure', id, kind: FailureKind.Handler, name: 'Error', code: '', message: String(err) }
}

/**
 * A running call's cancellation. Most handlers never read their signal, and
 * an AbortController costs ~10 µs to build (an EventTarget): a leader
 * serving forwarded proposals built one per call. This builds it on first
 * read, already aborted if the call was cancelled before.
 */
class CallAbort {
  private controller: AbortController | null = null
  private reason: unknown = undefined
  aborted = false

  get signal (): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController()
      if (this.aborted) this.controller.abort(this.reason)
    }
    return this.controller.signal
  }

  abort (reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    this.controller?.abort(reason)
  }
}
