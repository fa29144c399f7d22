/**
 * A bounded queue of outbound frames on one stream, for protocols where
 * many callers write concurrently (the RPC's requests and responses). Frames
 * are length-prefixed and coalesced into one `send` of up to CHUNK_BYTES;
 * when `send` reports a full buffer the queue waits for `onDrain` before
 * writing more, and `offer` refuses frames once `maxQueuedBytes` wait, so a
 * slow or stalled peer costs bounded memory and the refusal is the caller's
 * to report. A write that fails aborts the stream: its owner learns of it
 * from the stream's `close` event.
 */
import './polyfill.js'
import type { Stream } from '@libp2p/interface'
import { concat } from 'uint8arrays'
import { lengthPrefixed } from './length-prefix.js'

const CHUNK_BYTES = 256 * 1024

export class FrameQueue {
  readonly maxQueuedBytes: number
  private parts: Uint8Array[] = []
  private bytes = 0
  private stream: Stream | null = null
  private pumping = false
  private flushQueued = false

  constructor (maxQueuedBytes: number) {
    this.maxQueuedBytes = maxQueuedBytes
  }

  get queuedBytes (): number {
    return this.bytes
  }

  /**
   * Queues one frame; returns false, queuing nothing, if that would put more
   * than maxQueuedBytes in the queue (one frame alone is always taken: the
   * frame size limit bounds it).
   */
  offer (frame: Uint8Array): boolean {
    const f = lengthPrefixed(frame)
    if (this.bytes > 0 && this.bytes + f.byteLength > this.maxQueuedBytes) return false
    this.parts.push(f)
    this.bytes += f.byteLength
    // Frames offered in the same turn leave in one write.
    if (!this.flushQueued) {
      this.flushQueued = true
      queueMicrotask(() => {
        this.flushQueued = false
        void this.pump()
      })
    }
    return true
  }

  /** Starts writing queued and future frames to `stream` (frames may be offered before it is open). */
  attach (stream: Stream): void {
    this.stream = stream
    void this.pump()
  }

  /** Drops everything queued; nothing more is written. */
  clear (): void {
    this.parts = []
    this.bytes = 0
    this.stream = null
  }

  private async pump (): Promise<void> {
    const stream = this.stream
    if (this.pumping || stream === null) return
    this.pumping = true
    try {
      while (this.parts.length > 0 && this.stream === stream) {
        const parts: Uint8Array[] = []
        let bytes = 0
        while (this.parts.length > 0 && (parts.length === 0 || bytes + this.parts[0].byteLength <= CHUNK_BYTES)) {
          const f = this.parts.shift() as Uint8Array
          bytes += f.byteLength
          parts.push(f)
        }
        this.bytes -= bytes
        if (!stream.send(parts.length === 1 ? parts[0] : concat(parts, bytes))) await stream.onDrain()
      }
    } catch (err) {
      this.clear()
      stream.abort(err as Error)
    } finally {
      this.pumping = false
    }
  }
}
