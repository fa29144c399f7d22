/**
 * Length-prefixed framing for long-lived streams: an unsigned varint byte
 * count, then the frame (the same layout as `lpStream` in @libp2p/utils, so
 * either side may use either). Decoding is bounded: a declared length over
 * the limit is an error, and the framing of that stream is then lost.
 */
import './polyfill.js'
import type { StreamMessageEvent } from '@libp2p/interface'
import { ProtocolFrameError } from './errors.js'

/** Bytes of the unsigned LEB128 varint for `n`. */
export function uvarint (n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot encode ${n} as a varint`)
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return Uint8Array.from(out)
}

/** One frame with its length prefix, ready for `stream.send`. */
export function lengthPrefixed (frame: Uint8Array): Uint8Array {
  const prefix = uvarint(frame.byteLength)
  const out = new Uint8Array(prefix.byteLength + frame.byteLength)
  out.set(prefix, 0)
  out.set(frame, prefix.byteLength)
  return out
}

/**
 * Splits a byte stream into frames. `push` returns every frame completed by
 * the chunk and throws ProtocolFrameError when the peer breaks the framing
 * (a declared length over the limit, or a varint over 8 bytes); the stream
 * must then be abandoned. Frames are views into the chunks, not copies.
 *
 * Written here rather than taken from @libp2p/utils: its decoder throws and
 * catches a RangeError at the end of every chunk, which cost ~30 µs per
 * received Raft message on this machine, on the commit path.
 */
export class FrameDecoder {
  readonly maxFrameBytes: number
  /** Bytes of an incomplete frame, in arrival order. */
  private parts: Uint8Array[] = []
  private partBytes = 0
  /** Bytes (prefix and body) the incomplete frame needs; 0 while its prefix is incomplete. */
  private need = 0

  constructor (maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes
  }

  push (chunk: StreamMessageEvent['data']): Uint8Array[] {
    let data = chunk instanceof Uint8Array ? chunk : chunk.subarray()
    if (this.partBytes > 0) {
      this.parts.push(data)
      this.partBytes += data.byteLength
      if (this.partBytes < this.need) return []
      data = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.partBytes)
      this.parts = []
      this.partBytes = 0
      this.need = 0
    }
    return this.scan(data)
  }

  private scan (buf: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = []
    let off = 0
    while (off < buf.byteLength) {
      let len = 0
      let scale = 1
      let start = -1
      for (let i = off; i < buf.byteLength; i++) {
        const b = buf[i]
        len += (b & 0x7f) * scale
        if ((b & 0x80) === 0) {
          start = i + 1
          break
        }
        if (i - off === 7) throw new ProtocolFrameError('broken framing: length prefix longer than 8 bytes')
        scale *= 0x80
      }
      if (start === -1) break
      if (len > this.maxFrameBytes) throw new ProtocolFrameError(`broken framing: a frame of ${len} bytes (limit ${this.maxFrameBytes} bytes)`)
      if (start + len > buf.byteLength) {
        this.need = start + len - off
        break
      }
      // An empty frame carries nothing; lpStream's decoder skips them too.
      if (len > 0) frames.push(buf.subarray(start, start + len))
      off = start + len
    }
    if (off < buf.byteLength) {
      this.parts = [buf.subarray(off)]
      this.partBytes = buf.byteLength - off
    }
    return frames
  }
}

/**
 * Reads an unsigned varint at `offset`; returns the value and the offset
 * after it. Throws RangeError on a truncated or over-long (> 2^53) varint.
 */
export function readUvarint (buf: Uint8Array, offset: number): [number, number] {
  let value = 0
  let scale = 1
  for (let i = offset; i < buf.byteLength && i < offset + 8; i++) {
    const b = buf[i]
    value += (b & 0x7f) * scale
    if ((b & 0x80) === 0) return [value, i + 1]
    scale *= 0x80
  }
  throw new RangeError('truncated or over-long varint')
}
