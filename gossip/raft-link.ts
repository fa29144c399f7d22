/**
 * The outbound half of the Raft transport towards one member: one
 * long-lived stream, opened on first use and reopened with exponential
 * backoff after it breaks, fed from a bounded queue of length-prefixed
 * frames. When the queue is full the oldest frames are dropped: a Raft
 * message is superseded by later ones and Raft retries whatever matters,
 * whereas an unbounded queue towards a slow peer would grow without limit.
 *
 * Frames are coalesced into one `send` of up to CHUNK_BYTES; when `send`
 * reports a full buffer the link waits for `onDrain` before writing more.
 */
import './polyfill.js'
import type { Stream } from '@libp2p/interface'
import { backoffMs } from './dialer.js'
import { errorFields, type Logger } from './logger.js'

const CHUNK_BYTES = 256 * 1024

export interface LinkLimits {
  readonly maxQueuedFrames: number
  readonly maxQueuedBytes: number
  readonly reconnectBaseMs: number
  readonly reconnectMaxMs: number
}

export interface LinkCounters {
  dropped: number
  streamsOpened: number
  sent: number
}

export class RaftLink {
  readonly nodeId: string
  peerId: string
  private readonly open: (peerId: string) => Promise<Stream>
  private readonly limits: LinkLimits
  private readonly counters: LinkCounters
  private readonly log: Logger
  private queue: Uint8Array[] = []
  private queuedBytes = 0
  private stream: Stream | null = null
  private opening = false
  private pumping = false
  private failures = 0
  private retryAt = 0
  private timer: NodeJS.Timeout | null = null
  private closed = false
  private flushQueued = false

  constructor (nodeId: string, peerId: string, open: (peerId: string) => Promise<Stream>, limits: LinkLimits, counters: LinkCounters, log: Logger) {
    this.nodeId = nodeId
    this.peerId = peerId
    this.open = open
    this.limits = limits
    this.counters = counters
    this.log = log
  }

  get queuedFrames (): number {
    return this.queue.length
  }

  /** Queues one length-prefixed frame and makes sure it is on its way. */
  enqueue (frame: Uint8Array): void {
    if (this.closed) return
    this.queue.push(frame)
    this.queuedBytes += frame.byteLength
    while (this.queue.length > this.limits.maxQueuedFrames || (this.queuedBytes > this.limits.maxQueuedBytes && this.queue.length > 1)) {
      const old = this.queue.shift() as Uint8Array
      this.queuedBytes -= old.byteLength
      this.counters.dropped++
    }
    // Frames enqueued in the same turn (one Ready's messages) leave in one write.
    if (!this.flushQueued) {
      this.flushQueued = true
      queueMicrotask(() => {
        this.flushQueued = false
        this.kick()
      })
    }
  }

  /** Drops everything queued and the stream (the member is gone); the link stays usable. */
  reset (reason: string): void {
    this.counters.dropped += this.queue.length
    this.queue = []
    this.queuedBytes = 0
    this.failures = 0
    this.retryAt = 0
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    const s = this.stream
    this.stream = null
    s?.abort(new Error(reason))
  }

  close (): void {
    this.reset('transport closed')
    this.closed = true
  }

  private kick (): void {
    if (this.closed || this.pumping || this.opening || this.queue.length === 0) return
    if (this.stream === null) {
      const wait = this.retryAt - Date.now()
      if (wait > 0) {
        if (this.timer === null) this.timer = setTimeout(() => { this.timer = null; this.kick() }, wait)
        return
      }
      void this.connect()
      return
    }
    void this.pump(this.stream)
  }

  private async connect (): Promise<void> {
    this.opening = true
    const peerId = this.peerId
    try {
      const stream = await this.open(peerId)
      if (this.closed || peerId !== this.peerId) {
        stream.abort(new Error('link reset while opening'))
        return
      }
      this.failures = 0
      this.counters.streamsOpened++
      this.stream = stream
      stream.addEventListener('close', () => {
        if (this.stream === stream) this.stream = null
        this.kick()
      })
    } catch (err) {
      this.failures++
      this.retryAt = Date.now() + backoffMs(this.failures - 1, this.limits.reconnectBaseMs, this.limits.reconnectMaxMs, Math.random())
      this.log.debug({ peer: this.nodeId, attempt: this.failures, ...errorFields(err) }, 'cannot open raft stream')
    } finally {
      this.opening = false
    }
    this.kick()
  }

  private async pump (stream: Stream): Promise<void> {
    this.pumping = true
    try {
      while (this.queue.length > 0 && this.stream === stream && !this.closed) {
        if (stream.writeStatus !== 'writable') {
          if (this.stream === stream) this.stream = null
          break
        }
        const parts: Uint8Array[] = []
        let bytes = 0
        while (this.queue.length > 0 && (parts.length === 0 || bytes + this.queue[0].byteLength <= CHUNK_BYTES)) {
          const f = this.queue.shift() as Uint8Array
          this.queuedBytes -= f.byteLength
          bytes += f.byteLength
          parts.push(f)
        }
        this.counters.sent += parts.length
        const more = stream.send(parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes))
        if (!more) await stream.onDrain()
      }
    } catch (err) {
      // The frames in flight are lost; Raft resends what still matters.
      this.log.debug({ peer: this.nodeId, ...errorFields(err) }, 'raft stream write failed')
      if (this.stream === stream) this.stream = null
      stream.abort(err as Error)
    } finally {
      this.pumping = false
    }
    this.kick()
  }
}
