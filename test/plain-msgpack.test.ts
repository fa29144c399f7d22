/**
 * The extension-free check before the mesh's wire codecs decode a frame
 * (gossip/plain-msgpack.ts): what msgpackr packs from plain values passes;
 * extensions, truncation, trailing bytes and lying counts do not; and a
 * Raft frame holding a huge BigInt is refused at once instead of costing
 * seconds of decoding.
 */
import fc from 'fast-check'
import { Packr } from 'msgpackr'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { ProtocolFrameError } from '../gossip/errors.js'
import { checkPlainMsgpack } from '../gossip/plain-msgpack.js'
import { decodeRaftMessage, InvalidFrameError } from '../gossip/raft-codec.js'
import { decodeSyncResponse, decodeUpdate } from '../lib/cache/cache-codec.js'
import { decodeFetchResponse, decodeHead } from '../lib/events/event-codec.js'

/** As the wire codecs pack. */
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })
/** Writes every extension msgpackr knows. */
const extPackr = new Packr({ useRecords: false, moreTypes: true, mapsAsObjects: true })
const plain = fc.letrec(tie => ({
  value: fc.oneof({ depthSize: 'small' }, fc.constant(null), fc.boolean(), fc.double(), fc.integer(), fc.maxSafeInteger(), fc.string(), fc.uint8Array({ maxLength: 300 }),
    fc.array(tie('value')), fc.dictionary(fc.string().filter(k => k !== '__proto__'), tie('value')))
})).value

t.test('what msgpackr packs from plain values passes', async t => {
  fc.assert(fc.property(plain, v => { checkPlainMsgpack(packr.pack(v)) }), { numRuns: 2000 })
  t.pass()
})

t.test('extensions are refused wherever they are', async t => {
  for (const [what, v] of [['a Date', new Date()], ['a Set', new Set([1])], ['a BigInt', 2n ** 70n], ['a RegExp', /a+$/], ['an Error', new Error('x')], ['undefined', undefined], ['a typed array', new Float64Array(2)]] as const) {
    t.throws(() => { checkPlainMsgpack(extPackr.pack({ a: [1, v] })) }, ProtocolFrameError, what)
  }
  t.throws(() => { checkPlainMsgpack(Uint8Array.of(0xc1)) }, ProtocolFrameError, 'the reserved byte')
})

t.test('truncated frames, trailing bytes and counts that lie are refused', async t => {
  const frame = packr.pack({ a: [1, 2, 'three'], b: new Uint8Array(10) })
  for (let cut = 0; cut < frame.byteLength; cut++) t.throws(() => { checkPlainMsgpack(frame.subarray(0, cut)) }, ProtocolFrameError, `cut at ${cut}`)
  t.throws(() => { checkPlainMsgpack(Buffer.concat([frame, Uint8Array.of(0xc0)])) }, ProtocolFrameError, 'a second value')
  t.throws(() => { checkPlainMsgpack(Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0)) }, ProtocolFrameError, 'an array of 2^32 - 1 in one byte')
  t.throws(() => { checkPlainMsgpack(Uint8Array.of(0xc6, 0x7f, 0xff, 0xff, 0xff, 0)) }, ProtocolFrameError, 'a byte string longer than the frame')
  t.doesNotThrow(() => { checkPlainMsgpack(Buffer.concat([new Uint8Array(100_000).fill(0x91), Uint8Array.of(0xc0)])) }, 'deep nesting is left to msgpackr')
})

/** `prefix` then an extension 0x42 (BigInt) of 16 MB: msgpackr took ~650 ms to build it. */
function bigIntFrame (prefix: number[]): Uint8Array {
  const size = 16_000_000
  return Buffer.concat([Uint8Array.from(prefix), Uint8Array.of(0xc9, size >>> 24, (size >> 16) & 0xff, (size >> 8) & 0xff, size & 0xff, 0x42), randomBytes(size)])
}

t.test('frames holding a 16 MB BigInt are refused without decoding it', async t => {
  const cases: Array<[string, (b: Uint8Array) => unknown, number[], new (...args: never[]) => Error]> = [
    ['raft', decodeRaftMessage, [0x81, 0xa4, 0x74, 0x79, 0x70, 0x65], InvalidFrameError],
    ['cache update', decodeUpdate, [0x92, 0xa1, 0x69], ProtocolFrameError],
    ['cache sync response', decodeSyncResponse, [0x94, 0xc0, 0x90, 0x91], ProtocolFrameError],
    ['event fetch response', decodeFetchResponse, [0x92, 0xa1, 0x69, 0x91], ProtocolFrameError],
    ['event head', decodeHead, [0x93, 0xa1, 0x69, 0x01], ProtocolFrameError]
  ]
  for (const [what, decode, prefix, error] of cases) {
    const frame = bigIntFrame(prefix)
    const started = performance.now()
    t.throws(() => decode(frame), error, what)
    const ms = performance.now() - started
    t.ok(ms < 100, `${what}: refused in ${ms.toFixed(1)} ms`)
  }
})
