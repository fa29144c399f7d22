/**
 * The frames a fuzzed decoder is fed: valid ones from the real encoder,
 * mutations of valid ones (bit flips, truncation, extension, splices of
 * another frame, length fields that lie, values swapped inside the msgpack
 * tree), msgpack bombs (deep nesting, huge declared lengths, every
 * extension type msgpackr knows, cycles, `__proto__` keys), and random
 * bytes. Each is drawn by fast-check, so a seed replays the same frames.
 */
import fc from 'fast-check'
import { Packr } from 'msgpackr'
import type { FuzzTarget } from './targets.js'

export type FrameKind = 'valid' | 'mutated' | 'bomb' | 'random'

export interface Frame {
  readonly kind: FrameKind
  readonly bytes: Uint8Array
  /** For a valid frame: what the decoder must return. */
  readonly expect?: unknown
}

/** Bytes that mean something to msgpack: type tags, length headers, extension types. */
const TAGS = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcf, 0xd0, 0xd3,
  0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff]
/** Headers whose length field claims far more than any frame holds. */
const LYING_HEADERS = [
  [0xdd, 0xff, 0xff, 0xff, 0xff], [0xdd, 0x00, 0x10, 0x00, 0x00], [0xdc, 0xff, 0xff], [0xdf, 0xff, 0xff, 0xff, 0xff], [0xde, 0xff, 0xff],
  [0xc6, 0x7f, 0xff, 0xff, 0xff], [0xc6, 0xff, 0xff, 0xff, 0xff], [0xc5, 0xff, 0xff], [0xc4, 0xff], [0xdb, 0xff, 0xff, 0xff, 0xff], [0xda, 0xff, 0xff], [0xd9, 0xff],
  [0xc9, 0xff, 0xff, 0xff, 0xff, 0x74], [0xc9, 0x7f, 0xff, 0xff, 0xff, 0x42], [0xc8, 0xff, 0xff, 0x65],
  // unsigned varints (the stream prefix, the channel header): 2^49, 2^56 - 1, nine bytes
  [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
  [0xff, 0xff, 0xff, 0x1f], [0x80, 0x80, 0x80, 0x20]
]
/** Extension types msgpackr decodes by default, and a few it does not. */
const EXT_TYPES = [0x00, 0x42, 0x62, 0x65, 0x69, 0x70, 0x72, 0x73, 0x74, 0x78, 0xff, 0x01, 0x7f, 0x80]
const BAD_VALUES: unknown[] = [null, true, false, 0, -1, 1.5, -0, NaN, Infinity, 2 ** 53, 2 ** 64, -(2 ** 63), '', 'x'.repeat(300), 'é'.repeat(2000), '__proto__', 'constructor',
  new Uint8Array(0), new Uint8Array(70_000), [], {}, [[[[]]]], { __proto__: null, toString: 1 }, BigInt(2) ** BigInt(70), new Date(0), new Set([1]), new Map([[1, 2]])]

const edit = fc.record({
  op: fc.constantFrom('flip', 'byte', 'truncate', 'extend', 'insert', 'replace', 'lie', 'nudge', 'tree', 'bomb'),
  at: fc.nat(),
  n: fc.nat(),
  junk: fc.uint8Array({ maxLength: 16 })
})
type Edit = fc.Arbitrary<{ op: string, at: number, n: number, junk: Uint8Array }> extends fc.Arbitrary<infer E> ? E : never

const bombSpec = fc.record({ kind: fc.nat(11), n: fc.nat(), junk: fc.uint8Array({ maxLength: 64 }) })

/** Packs the trees the `tree` edit makes, with every type msgpackr can write. */
const anyPackr = new Packr({ useRecords: false, moreTypes: true, mapsAsObjects: true })

export function frameArbitrary (t: FuzzTarget): fc.Arbitrary<Frame> {
  const valid = t.valid.map((v): Frame => ({ kind: 'valid', bytes: v.bytes, expect: v.expect }))
  const mutated = fc.tuple(t.valid, t.valid, fc.array(edit, { minLength: 1, maxLength: 4 }))
    .map(([base, donor, edits]): Frame => ({ kind: 'mutated', bytes: edits.reduce((b, e) => applyEdit(b, donor.bytes, e), base.bytes) }))
  const bombs = fc.tuple(bombSpec, fc.option(t.valid, { freq: 2 })).map(([spec, host]): Frame => {
    const b = bomb(spec.kind, spec.n, spec.junk)
    if (host === null) return { kind: 'bomb', bytes: b }
    // A bomb planted inside a valid frame, where a field would be.
    const at = spec.n % Math.max(1, host.bytes.byteLength)
    return { kind: 'bomb', bytes: Buffer.concat([host.bytes.subarray(0, at), b, host.bytes.subarray(at + 1)]) }
  })
  const random = fc.oneof(
    { weight: 9, arbitrary: fc.uint8Array({ maxLength: 512 }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 512, maxLength: 64 * 1024 }) }
  ).map((bytes): Frame => ({ kind: 'random', bytes }))
  return fc.oneof(
    { weight: 2, arbitrary: valid },
    { weight: 5, arbitrary: mutated },
    { weight: 1, arbitrary: bombs },
    { weight: 2, arbitrary: random }
  )
}

function applyEdit (b: Uint8Array, donor: Uint8Array, e: Edit): Uint8Array {
  const len = b.byteLength
  const at = len === 0 ? 0 : e.at % len
  switch (e.op) {
    case 'flip': {
      if (len === 0) return e.junk
      const out = Uint8Array.from(b)
      out[at] ^= 1 << (e.n % 8)
      return out
    }
    case 'byte': {
      if (len === 0) return Uint8Array.of(TAGS[e.n % TAGS.length])
      const out = Uint8Array.from(b)
      out[at] = e.n % 3 === 0 ? e.n % 256 : TAGS[e.n % TAGS.length]
      return out
    }
    case 'truncate': return b.subarray(0, at)
    case 'extend': return Buffer.concat([b, e.junk.byteLength > 0 ? e.junk : donor])
    case 'insert': return Buffer.concat([b.subarray(0, at), donorSlice(donor, e.n), b.subarray(at)])
    case 'replace': return Buffer.concat([b.subarray(0, at), donorSlice(donor, e.n), b.subarray(at + 1 + (e.n % 8))])
    case 'lie': return Buffer.concat([b.subarray(0, at), Uint8Array.from(LYING_HEADERS[e.n % LYING_HEADERS.length]), b.subarray(at + 1)])
    case 'nudge': {
      // A length field off by a little: the commonest lie, and the hardest to notice.
      if (len === 0) return b
      const out = Uint8Array.from(b)
      out[at] = (out[at] + [1, -1, 2, -2, 16, -16][e.n % 6] + 256) % 256
      return out
    }
    case 'tree': return mutateTree(b, e)
    default: return Buffer.concat([b.subarray(0, at), bomb(e.n % 12, e.n, e.junk), b.subarray(at)])
  }
}

function donorSlice (donor: Uint8Array, n: number): Uint8Array {
  if (donor.byteLength === 0) return donor
  const start = n % donor.byteLength
  return donor.subarray(start, start + 1 + ((n >> 8) % 64))
}

/** Replaces, removes or adds one value somewhere in the decoded msgpack tree, and packs it again. */
function mutateTree (b: Uint8Array, e: Edit): Uint8Array {
  let root: unknown
  try {
    root = anyPackr.unpack(b)
  } catch {
    return b
  }
  const holders: Array<Record<string | number, unknown>> = []
  const walk = (v: unknown, depth: number): void => {
    if (depth > 8 || typeof v !== 'object' || v === null || v instanceof Uint8Array) return
    holders.push(v as Record<string, unknown>)
    for (const c of Object.values(v)) walk(c, depth + 1)
  }
  walk(root, 0)
  if (holders.length === 0) return anyPackr.pack(BAD_VALUES[e.n % BAD_VALUES.length])
  const h = holders[e.at % holders.length]
  const keys = Object.keys(h)
  const bad = BAD_VALUES[e.n % BAD_VALUES.length]
  const choice = (e.n >> 5) % 4
  if (choice === 0 && keys.length > 0) delete h[keys[e.at % keys.length]]
  else if (choice === 1) h[Array.isArray(h) ? h.length : `extra${e.n % 3}`] = bad
  else if (keys.length > 0) h[keys[(e.at >> 3) % keys.length]] = bad
  try {
    return anyPackr.pack(root)
  } catch {
    return b
  }
}

/** A hostile msgpack value, `kind` picking which. */
export function bomb (kind: number, n: number, junk: Uint8Array): Uint8Array {
  switch (kind % 12) {
    case 0: return Buffer.concat([new Uint8Array(1000 + n % 200_000).fill(0x91), Uint8Array.of(0xc0)]) // nested arrays
    case 1: return Buffer.concat([Buffer.from('81a178'.repeat(1000 + n % 50_000), 'hex'), Uint8Array.of(0xc0)]) // nested maps
    case 2: return Buffer.concat([Uint8Array.from(LYING_HEADERS[n % 15]), new Uint8Array(n % 4096).fill(0xc0)]) // huge declared length
    case 3: { // an extension with a data length of its own
      const type = EXT_TYPES[n % EXT_TYPES.length]
      return Buffer.concat([Uint8Array.of(0xc7, junk.byteLength, type), junk])
    }
    case 4: { // an extension whose value is read as msgpack (Set, Error, RegExp, records) or whose data is long
      const type = EXT_TYPES[n % EXT_TYPES.length]
      return Buffer.concat([Uint8Array.of(0xd4, type, junk[0] ?? 0x90), junk.subarray(1)])
    }
    case 5: { // a big integer of up to 64 KiB
      const size = 1 + n % 65_535
      return Buffer.concat([Uint8Array.of(0xc8, size >> 8, size & 0xff, 0x42), new Uint8Array(size).fill(0xff)])
    }
    case 6: // a structured-clone cycle: an array that contains itself
      return Uint8Array.of(0xd6, 0x69, 0, 0, 0, 1, 0x92, 0xd6, 0x70, 0, 0, 0, 1, 0xc0)
    case 7: // a pointer to an object never declared
      return Uint8Array.of(0xd6, 0x70, 0, 0, 0, n % 256)
    case 8: // `__proto__` and `constructor` as map keys
      return Buffer.from(n % 2 === 0 ? '82a95f5f70726f746f5f5f81a17801ab636f6e7374727563746f72c0' : '81a95f5f70726f746f5f5fa0', 'hex')
    case 9: // a string that is not UTF-8
      return Buffer.concat([Uint8Array.of(0xd9, junk.byteLength + 2, 0xc3, 0x28), junk])
    case 10: // bundled strings whose declared size lies
      return Uint8Array.of(0xd6, 0x62, (n >> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff, 0xa1, 0x61)
    default: // a wide array of many small values, within the frame
      return Buffer.concat([Uint8Array.of(0xdd, 0, 1, 0, 0), new Uint8Array(65_536).fill(n % 2 === 0 ? 0xc0 : 0x90)])
  }
}
