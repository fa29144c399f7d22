/**
 * A check run before msgpackr decodes a wire frame: the frame must be
 * exactly one msgpack value made of nil, booleans, numbers, strings, byte
 * strings, arrays and maps, with no extension anywhere.
 *
 * msgpackr decodes its extensions on every Unpackr (there is no per-instance
 * switch), and some cost far more than their bytes: a BigInt of n bytes
 * takes super-linear time (60 MB, within a Raft frame's limit, blocked the
 * event loop for 2 s on this machine, found by the decoder fuzzer), a
 * RegExp is compiled from the peer's pattern. None of the mesh's own wire
 * formats uses one, so a frame with one is refused before it is decoded.
 *
 * One pass over the tokens, skipping string and byte-string bodies by their
 * length, with a count of values still owed instead of a stack: deep nesting
 * costs nothing here (msgpackr then refuses it by overflowing its stack, which
 * the codecs catch).
 */
import { ProtocolFrameError } from './errors.js'

/** Throws ProtocolFrameError unless `buf` is exactly one extension-free msgpack value. */
export function checkPlainMsgpack (buf: Uint8Array): void {
  const end = buf.byteLength
  let pos = 0
  // Values still to read; each takes at least one byte, so more than the bytes left is a lie.
  let owed = 1
  while (owed > 0) {
    if (owed > end - pos) throw new ProtocolFrameError(`msgpack declares ${owed} values in ${end - pos} bytes`)
    const b = buf[pos++]
    owed--
    if (b <= 0x7f || b >= 0xe0) continue
    if (b <= 0x8f) { owed += 2 * (b & 0x0f); continue }
    if (b <= 0x9f) { owed += b & 0x0f; continue }
    if (b <= 0xbf) { pos += b & 0x1f; continue }
    switch (b) {
      case 0xc0: case 0xc2: case 0xc3: break
      case 0xc4: case 0xd9: pos += 1 + at(buf, pos, 1); break
      case 0xc5: case 0xda: pos += 2 + at(buf, pos, 2); break
      case 0xc6: case 0xdb: pos += 4 + at(buf, pos, 4); break
      case 0xca: pos += 4; break
      case 0xcb: pos += 8; break
      case 0xcc: case 0xd0: pos += 1; break
      case 0xcd: case 0xd1: pos += 2; break
      case 0xce: case 0xd2: pos += 4; break
      case 0xcf: case 0xd3: pos += 8; break
      case 0xdc: owed += at(buf, pos, 2); pos += 2; break
      case 0xdd: owed += at(buf, pos, 4); pos += 4; break
      case 0xde: owed += 2 * at(buf, pos, 2); pos += 2; break
      case 0xdf: owed += 2 * at(buf, pos, 4); pos += 4; break
      default: throw new ProtocolFrameError(`msgpack ${b === 0xc1 ? 'reserved byte' : 'extension'} 0x${b.toString(16)} at ${pos - 1}`)
    }
    if (pos > end) throw new ProtocolFrameError('msgpack value runs past the end of the frame')
  }
  if (pos !== end) throw new ProtocolFrameError(`${end - pos} bytes after the msgpack value`)
}

/** The big-endian unsigned integer of `n` bytes at `pos`. */
function at (buf: Uint8Array, pos: number, n: number): number {
  if (pos + n > buf.byteLength) throw new ProtocolFrameError('msgpack header runs past the end of the frame')
  let v = 0
  for (let i = 0; i < n; i++) v = v * 256 + buf[pos + i]
  return v
}
