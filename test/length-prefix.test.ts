import fc from 'fast-check'
import t from 'tap'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { Uint8ArrayList } from 'uint8arraylist'
import { ProtocolFrameError } from '../gossip/errors.js'
import { FrameDecoder, lengthPrefixed, uvarint } from '../gossip/length-prefix.js'

/** Cuts `bytes` at the given points, each piece as a Uint8Array or, alternately, a Uint8ArrayList of two parts. */
function cut (bytes: Uint8Array, points: number[]): Array<Uint8Array | Uint8ArrayList> {
  const at = [...new Set(points.map(p => p % (bytes.byteLength + 1)))].sort((a, b) => a - b)
  const pieces: Array<Uint8Array | Uint8ArrayList> = []
  let from = 0
  for (const [i, p] of [...at, bytes.byteLength].entries()) {
    const piece = bytes.subarray(from, p)
    from = p
    if (piece.byteLength === 0) continue
    const half = piece.byteLength >> 1
    pieces.push(i % 2 === 0 ? piece : new Uint8ArrayList(piece.subarray(0, half), piece.subarray(half)))
  }
  return pieces
}

t.test('any frames, cut anywhere, come out whole and in order', async t => {
  fc.assert(fc.property(
    fc.array(fc.uint8Array({ minLength: 1, maxLength: 400 }), { maxLength: 12 }),
    fc.array(fc.nat(), { maxLength: 30 }),
    (frames, points) => {
      const d = new FrameDecoder(1000)
      const out = cut(Buffer.concat(frames.map(lengthPrefixed)), points).flatMap(p => d.push(p))
      t.same(out.map(f => Buffer.from(f)), frames.map(f => Buffer.from(f)))
    }
  ), { numRuns: 2000 })
})

t.test('reads what @libp2p/utils writes, and the same frames as its decoder', async t => {
  const frames = [new Uint8Array(300).fill(7), new Uint8Array(0), Uint8Array.of(1, 2, 3)]
  const wire = Buffer.concat(frames.map(lengthPrefixed))
  const theirs = [...new LengthPrefixedDecoder().decode(wire)].map(f => Buffer.from(f.subarray()))
  t.same(new FrameDecoder(1000).push(wire).map(f => Buffer.from(f)), theirs, 'empty frames are skipped, as lpStream does')
})

t.test('a frame over the limit or an over-long prefix breaks the stream with a clear error', async t => {
  t.throws(() => new FrameDecoder(100).push(uvarint(101)), ProtocolFrameError)
  t.throws(() => new FrameDecoder(100).push(uvarint(101)), /a frame of 101 bytes \(limit 100 bytes\)/)
  const d = new FrameDecoder(100)
  t.same(d.push(new Uint8Array(5).fill(0x80)), [], 'five continuation bytes may still become a prefix')
  t.throws(() => d.push(new Uint8Array(3).fill(0x80)), /length prefix longer than 8 bytes/)
})

t.test('a large frame in many small chunks is joined once it is complete', async t => {
  const frame = new Uint8Array(64 * 1024).map((_, i) => i & 0xff)
  const wire = lengthPrefixed(frame)
  const d = new FrameDecoder(1 << 20)
  const out: Uint8Array[] = []
  for (let i = 0; i < wire.byteLength; i += 1000) out.push(...d.push(wire.subarray(i, i + 1000)))
  t.equal(out.length, 1)
  t.same(Buffer.from(out[0]), Buffer.from(frame))
})
