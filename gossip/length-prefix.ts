/**
 * Length-prefixed framing for long-lived streams: an unsigned varint byte
 * count, then the frame (the same layout as `lpStream` in @libp2p/utils, so
 * either side may use either). Decoding is bounded: a declared length over
 * the limit is an error, and the framing of that stream is then lost.
 */
import './polyfill.js'
import { LengthPrefixedDecoder } from '@libp2p/utils'
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
 * (declared length over the limit, or more bytes buffered than any legal
 * frame needs); the stream must then be abandoned.
 */
export class FrameDecoder {
  private readonly decoder: LengthPrefixedDecoder
  readonly maxFrameBytes: number

  constructor (maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes
    this.decoder = new LengthPrefixedDecoder({ maxDataLength: maxFrameBytes, maxBufferSize: maxFrameBytes + 4 * 1024 * 1024 })
  }

  push (chunk: StreamMessageEvent['data']): Uint8Array[] {
    const frames: Uint8Array[] = []
    try {
      for (const f of this.decoder.decode(chunk)) frames.push(f.subarray())
    } catch (err) {
      throw new ProtocolFrameError(`broken framing: ${(err as Error).message} (limit ${this.maxFrameBytes} bytes)`)
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
