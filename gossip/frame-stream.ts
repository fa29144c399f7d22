/**
 * A libp2p stream carrying length-prefixed frames, for request/response
 * style protocols (the join handshake and its control stream): frames are
 * read in order with `next()` under a deadline, or handed to a handler once
 * the conversation becomes event driven. Writes honour backpressure.
 */
import './polyfill.js'
import type { AbortOptions, Stream } from '@libp2p/interface'
import { ProtocolFrameError } from './errors.js'
import { FrameDecoder, lengthPrefixed } from './length-prefix.js'

/** Frames buffered for `next()` before the peer is considered to be flooding. */
const MAX_QUEUED_FRAMES = 64

export class StreamClosedError extends Error {
  override readonly name = 'StreamClosedError'
  readonly code = 'ERR_STREAM_CLOSED'
}

interface Waiter {
  resolve: (frame: Uint8Array) => void
  reject: (err: Error) => void
}

export class FrameStream {
  readonly stream: Stream
  private readonly decoder: FrameDecoder
  private readonly queue: Uint8Array[] = []
  private waiter: Waiter | null = null
  private handler: ((frame: Uint8Array) => void) | null = null
  private ended: Error | null = null
  private readonly endListeners: Array<(err: Error) => void> = []

  constructor (stream: Stream, maxFrameBytes: number) {
    this.stream = stream
    this.decoder = new FrameDecoder(maxFrameBytes)
    stream.addEventListener('message', evt => {
      let frames: Uint8Array[]
      try {
        frames = this.decoder.push(evt.data)
      } catch (err) {
        this.end(err as Error)
        stream.abort(err as Error)
        return
      }
      for (const f of frames) this.deliver(f)
    })
    stream.addEventListener('close', evt => { this.end(evt.error ?? new StreamClosedError('stream closed')) })
    stream.addEventListener('remoteCloseWrite', () => { this.end(new StreamClosedError('the peer closed the stream')) })
  }

  /** The next frame; rejects if the stream ends or the signal aborts first. */
  async next (options: AbortOptions = {}): Promise<Uint8Array> {
    const queued = this.queue.shift()
    if (queued !== undefined) return queued
    if (this.ended !== null) throw this.ended
    if (this.waiter !== null) throw new ProtocolFrameError('concurrent reads on one frame stream')
    options.signal?.throwIfAborted()
    return await new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiter = null
        reject(options.signal?.reason as Error)
      }
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.waiter = {
        resolve: f => { options.signal?.removeEventListener('abort', onAbort); resolve(f) },
        reject: e => { options.signal?.removeEventListener('abort', onAbort); reject(e) }
      }
    })
  }

  /** From now on frames go to `handler` (queued ones first), not to `next()`. */
  onFrame (handler: (frame: Uint8Array) => void): void {
    this.handler = handler
    for (const f of this.queue.splice(0)) handler(f)
  }

  /** Called once when the stream ends, at once if it already has. */
  onEnd (listener: (err: Error) => void): void {
    if (this.ended !== null) listener(this.ended)
    else this.endListeners.push(listener)
  }

  get isOpen (): boolean {
    return this.ended === null && this.stream.writeStatus === 'writable'
  }

  async write (frame: Uint8Array, options: AbortOptions = {}): Promise<void> {
    if (this.stream.writeStatus !== 'writable') throw new StreamClosedError(`cannot write: stream is ${this.stream.writeStatus}`)
    if (!this.stream.send(lengthPrefixed(frame))) await this.stream.onDrain(options)
  }

  /** Closes our writing side after pending bytes are sent; never throws. */
  async close (options: AbortOptions = {}): Promise<void> {
    try {
      await this.stream.close(options)
    } catch (err) {
      this.stream.abort(err as Error)
    }
  }

  private deliver (frame: Uint8Array): void {
    if (this.handler !== null) {
      this.handler(frame)
      return
    }
    const w = this.waiter
    if (w !== null) {
      this.waiter = null
      w.resolve(frame)
    } else if (this.queue.length >= MAX_QUEUED_FRAMES) {
      // Nobody is reading: a peer that keeps sending is flooding us.
      const err = new ProtocolFrameError(`more than ${MAX_QUEUED_FRAMES} unread frames`)
      this.end(err)
      this.stream.abort(err)
    } else {
      this.queue.push(frame)
    }
  }

  private end (err: Error): void {
    if (this.ended !== null) return
    this.ended = err
    const w = this.waiter
    this.waiter = null
    w?.reject(err)
    for (const l of this.endListeners.splice(0)) l(err)
  }
}
