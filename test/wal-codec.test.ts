import t from 'tap'
import fc from 'fast-check'
import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { CorruptLogError } from '../raft/errors.js'
import { emptyHardState, type Entry, type EntryType, type HardState } from '../raft/types.js'
import { decodeBody, decodeWal, encodeRecord, MAX_RECORD_BODY_BYTES, type WalRecord } from '../raft/storage/wal-codec.js'
import { FileLogStore } from '../raft/storage/wal.js'
import { expectState, plainState } from './helpers/log-store-compliance.js'

const entryArb = fc.record({
  index: fc.maxSafeNat(),
  term: fc.maxSafeNat(),
  type: fc.constantFrom<EntryType>(0, 1, 2),
  data: fc.uint8Array({ maxLength: 48 })
})
const hardStateArb = fc.record({
  term: fc.maxSafeNat(),
  vote: fc.option(fc.string({ unit: 'binary', maxLength: 12 }), { nil: null }),
  commit: fc.maxSafeNat()
})
const recordArb: fc.Arbitrary<WalRecord> = fc.oneof(
  entryArb.map(entry => ({ kind: 'entry' as const, entry })),
  hardStateArb.map(hardState => ({ kind: 'hardState' as const, hardState })),
  fc.record({ index: fc.maxSafeNat(), term: fc.maxSafeNat(), discardLog: fc.boolean() }).map(m => ({ kind: 'snapshot' as const, ...m })),
  fc.record({ seq: fc.maxSafeNat(), lastIndex: fc.maxSafeNat(), lastTerm: fc.maxSafeNat() }).map(m => ({ kind: 'segmentStart' as const, ...m }))
)

/** Records as plain data, with bytes as hex so equality is easy to read. */
function plain (records: readonly WalRecord[]): unknown[] {
  const hex = records.map(r => r.kind === 'entry' ? { ...r, entry: { ...r.entry, data: Buffer.from(r.entry.data).toString('hex') } } : r)
  // Through JSON, so objects fast-check made without a prototype compare equal to decoded ones.
  return JSON.parse(JSON.stringify(hex)) as unknown[]
}

/** Records encoded back to back, with the offset where each frame starts (and the total length last). */
function encodeAll (records: readonly WalRecord[]): { bytes: Buffer, offsets: number[] } {
  const frames = records.map(encodeRecord)
  const offsets = [0]
  for (const f of frames) offsets.push(offsets.at(-1)! + f.length)
  return { bytes: Buffer.concat(frames), offsets }
}

t.test('records survive an encode/decode round trip', async t => {
  fc.assert(fc.property(fc.array(recordArb, { maxLength: 20 }), records => {
    const { bytes, offsets } = encodeAll(records)
    const { records: decoded, end } = decodeWal(bytes)
    assert.deepEqual(end, { kind: 'clean' })
    assert.deepEqual(plain(decoded.map(d => d.record)), plain(records))
    assert.deepEqual(decoded.map(d => d.offset), offsets.slice(0, -1))
  }), { numRuns: 300 })
  t.pass('300 random record lists round-tripped')
})

t.test('a vote that starts with U+FEFF keeps it (found by the property above, seed -1280197697)', async t => {
  const records: WalRecord[] = [{ kind: 'hardState', hardState: { term: 0, vote: '\uFEFF', commit: 0 } }, { kind: 'hardState', hardState: { term: 1, vote: '\uFEFFn1', commit: 0 } }]
  t.same(plain(decodeWal(encodeAll(records).bytes).records.map(d => d.record)), plain(records))
})

t.test('a buffer cut at any byte decodes to exactly the records before the cut', async t => {
  fc.assert(fc.property(fc.array(recordArb, { minLength: 1, maxLength: 8 }), fc.double({ min: 0, max: 1, noNaN: true }), (records, where) => {
    const { bytes, offsets } = encodeAll(records)
    const cut = Math.floor(where * bytes.length)
    const whole = offsets.filter(o => o <= cut).length - 1
    const { records: decoded, end } = decodeWal(bytes.subarray(0, cut))
    assert.deepEqual(plain(decoded.map(d => d.record)), plain(records.slice(0, whole)))
    if (cut === offsets[whole]) assert.deepEqual(end, { kind: 'clean' })
    else assert.deepEqual([end.kind, end.kind === 'clean' ? -1 : end.offset], ['torn', offsets[whole]])
  }), { numRuns: 500 })
  t.pass('500 random cuts decoded to a clean prefix')
})

t.test('a flipped bit is a torn tail in the last record and corruption anywhere else', async t => {
  fc.assert(fc.property(fc.array(recordArb, { minLength: 1, maxLength: 8 }), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), fc.nat(7), (records, where, bit) => {
    const { bytes, offsets } = encodeAll(records)
    const at = Math.floor(where * bytes.length)
    bytes[at] ^= 1 << bit
    const hit = offsets.filter(o => o <= at).length - 1
    const { records: decoded, end } = decodeWal(bytes)
    assert.deepEqual(plain(decoded.map(d => d.record)), plain(records.slice(0, hit)), 'only the records before the damage')
    assert.deepEqual([end.kind, end.kind === 'clean' ? -1 : end.offset], [hit === records.length - 1 ? 'torn' : 'corrupt', offsets[hit]])
  }), { numRuns: 500 })
  t.pass('500 random bit flips classified')
})

t.test('decoded data is a copy that does not pin the segment it was read from', async t => {
  const segment = Buffer.concat([encodeRecord({ kind: 'entry', entry: { index: 1, term: 1, type: 0, data: new Uint8Array([1, 2, 3]) } }), Buffer.alloc(1000)])
  const [decoded] = decodeWal(segment).records
  assert.ok(decoded.record.kind === 'entry')
  t.equal(decoded.record.entry.data.buffer.byteLength, 3)
})

t.test('a zero-filled tail, as left by a crash after the file grew, is torn', async t => {
  const { bytes } = encodeAll([{ kind: 'hardState', hardState: emptyHardState }])
  t.match(decodeWal(Buffer.concat([bytes, Buffer.alloc(100)])), { records: [{ offset: 0 }], end: { kind: 'torn', offset: bytes.length } })
})

t.test('a record with a valid checksum but an invalid body is corruption, never a tear', async t => {
  const body = Buffer.from([9, 1, 2, 3])
  const frame = Buffer.alloc(8 + body.length)
  frame.writeUInt32LE(body.length, 0)
  frame.writeUInt32LE((await import('node:zlib')).crc32(body), 4)
  body.copy(frame, 8)
  t.match(decodeWal(frame).end, { kind: 'corrupt', offset: 0, reason: /unknown record kind 9/ })
  const tooLong = Buffer.alloc(8)
  tooLong.writeUInt32LE(MAX_RECORD_BODY_BYTES + 1, 0)
  const next = encodeRecord({ kind: 'hardState', hardState: emptyHardState })
  t.match(decodeWal(Buffer.concat([tooLong, next])).end, { kind: 'corrupt', offset: 0, reason: /exceeds/ })
})

// No timing thresholds (they flake on shared machines): the bounded scan is
// shown by the reason it gives up with, which only the bound produces.
t.test('telling a tear from corruption on large and on hostile tails', async t => {
  const big = encodeRecord({ kind: 'entry', entry: { index: 1, term: 1, type: 0, data: randomBytes(8 << 20) } })
  t.match(decodeWal(big.subarray(0, big.length / 2)).end, { kind: 'torn', offset: 0 })

  // After damage, a header-like candidate every 26 bytes, each claiming the rest of the file.
  const hostile = Buffer.alloc(200_000)
  for (let p = 8; p + 26 <= hostile.length; p += 26) {
    hostile.writeUInt32LE(hostile.length - p - 8, p)
    hostile[p + 8] = 1
  }
  t.match(decodeWal(hostile).end, { kind: 'corrupt', offset: 0, reason: /too much of what follows looks like records/ })
})

t.test('malformed bodies are rejected field by field', async t => {
  const hs = encodeRecord({ kind: 'hardState', hardState: { term: 1, vote: 'ab', commit: 2 } }).subarray(8)
  const cases: Array<[string, Buffer, RegExp]> = [
    ['an unknown entry type', Buffer.concat([encodeRecord({ kind: 'entry', entry: { index: 1, term: 1, type: 0, data: new Uint8Array(0) } }).subarray(8, 25), Buffer.from([5])]), /entry type 5/],
    ['a hard state with trailing bytes', Buffer.concat([hs, Buffer.from([0])]), /trailing/],
    ['a vote flag other than 0 or 1', Buffer.from([...hs.subarray(0, 17), 2]), /vote flag/],
    ['a vote that is not UTF-8', Buffer.from([...hs.subarray(0, 18), 2, 0, 0xff, 0xfe]), /UTF-8/],
    ['a term beyond Number.MAX_SAFE_INTEGER', Buffer.from([2, 0, 0, 0, 0, 0, 0, 0x20, 0, ...new Uint8Array(9)]), /MAX_SAFE_INTEGER/],
    ['a truncated marker', Buffer.from([3, 1, 0, 0]), /needs/],
    ['a marker flag other than 0 or 1', Buffer.from([3, ...new Uint8Array(16), 7]), /discard flag/]
  ]
  for (const [why, body, reason] of cases) t.throws(() => decodeBody(body), reason, why)
})

// ---- File level: the real store writes, a crash or bit rot damages, a new store recovers. ----

interface Intent { back: number, count: number, newTerm: boolean, commit: number | null, data: Uint8Array }
const intentArb: fc.Arbitrary<Intent> = fc.record({
  back: fc.nat(3),
  count: fc.nat(3),
  newTerm: fc.boolean(),
  commit: fc.option(fc.nat(50), { nil: null }),
  data: fc.uint8Array({ maxLength: 30 })
})

interface Segment { name: string, bytes: Buffer, frames: Array<{ offset: number, record: WalRecord }> }

/** Small, so a dozen saves span several segments. */
const SEGMENT_BYTES = 300

/**
 * Runs the intents as saves on a FileLogStore with small segments, all
 * issued at once so group commit shapes the files as it would in use;
 * returns the segment files it left.
 */
async function writeWal (intents: readonly Intent[]): Promise<Segment[]> {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-wal-codec-'))
  try {
    const store = new FileLogStore({ dir, segmentBytes: SEGMENT_BYTES })
    await store.open()
    let last = 0
    let term = 1
    const saves: Array<Promise<void>> = []
    for (const i of intents) {
      const first = Math.max(1, last + 1 - i.back)
      // Raft never holds two different entries with the same index and term
      // (log matching), and the store relies on it: rewriting existing
      // entries is what a new leader, of a new term, does.
      if (i.newTerm || (i.count > 0 && first <= last)) term++
      const list: Entry[] = []
      for (let k = 0; k < i.count; k++) list.push({ index: first + k, term, type: 0, data: i.data })
      if (list.length > 0) last = first + list.length - 1
      saves.push(store.save(list, i.commit === null ? null : { term, vote: `n${term % 3}`, commit: i.commit }))
    }
    await Promise.all(saves)
    await store.close()
    const names = (await readdir(dir)).sort()
    return await Promise.all(names.map(async name => {
      const bytes = await readFile(join(dir, name))
      return { name, bytes, frames: decodeWal(bytes).records }
    }))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** What replaying these records must give, by the simplest possible model of the log. */
function model (records: readonly WalRecord[]): { hardState: HardState, entries: Entry[] } {
  let hardState: HardState = emptyHardState
  const entries: Entry[] = []
  for (const r of records) {
    if (r.kind === 'hardState') hardState = r.hardState
    if (r.kind === 'entry') {
      entries.length = r.entry.index - 1
      entries.push(r.entry)
    }
  }
  return { hardState, entries }
}

/** Opens a fresh store over the given segment files: its recovered state, or the error it threw. */
async function recover (segments: ReadonlyArray<{ name: string, bytes: Uint8Array }>): Promise<{ dir: string, state?: unknown, error?: unknown }> {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-wal-recover-'))
  try {
    for (const s of segments) await writeFile(join(dir, s.name), s.bytes)
    const store = new FileLogStore({ dir, segmentBytes: SEGMENT_BYTES })
    try {
      const state = plainState(await store.open())
      await store.close()
      return { dir, state }
    } catch (error) {
      return { dir, error }
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const recordsOf = (segments: readonly Segment[]): WalRecord[] => segments.flatMap(s => s.frames.map(f => f.record))
const stateOf = (records: readonly WalRecord[]): unknown => {
  const m = model(records)
  return expectState(m.hardState, null, m.entries)
}

// Writing a WAL costs real fsyncs, so each generated WAL is damaged in several places.
const wals = fc.array(intentArb, { minLength: 1, maxLength: 14 })
const places = fc.array(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), { minLength: 1, maxLength: 4 })

t.test('a WAL cut at any byte of the newest segment recovers exactly the records before the cut', async t => {
  await fc.assert(fc.asyncProperty(wals, places, async (intents, wheres) => {
    const segments = await writeWal(intents)
    const last = segments.at(-1)!
    for (const where of [...wheres, 1]) {
      const cut = Math.floor(where * last.bytes.length)
      const kept = last.frames.filter(f => f.offset + encodeRecord(f.record).length <= cut).map(f => f.record)
      const { state, error } = await recover([...segments.slice(0, -1), { name: last.name, bytes: last.bytes.subarray(0, cut) }])
      assert.equal(error, undefined, 'a pure truncation never fails recovery')
      assert.deepEqual(state, stateOf([...recordsOf(segments.slice(0, -1)), ...kept]))
    }
  }), { numRuns: 120 })
  t.pass('random cuts of the newest segment recovered exactly')
})

t.test('a WAL cut inside an older segment is refused, unless nothing it lost mattered', async t => {
  await fc.assert(fc.asyncProperty(wals, fc.nat(), places, async (intents, pick, wheres) => {
    const segments = await writeWal(intents)
    fc.pre(segments.length > 1)
    const s = pick % (segments.length - 1)
    for (const where of wheres) {
      const cut = Math.floor(where * segments[s].bytes.length)
      const { state, error } = await recover(segments.map((seg, i) => i === s ? { name: seg.name, bytes: seg.bytes.subarray(0, cut) } : seg))
      if (error === undefined) assert.deepEqual(state, stateOf(recordsOf(segments)), 'recovered everything')
      else assert.ok(error instanceof CorruptLogError, String(error))
    }
  }), { numRuns: 80 })
  t.pass('random cuts of older segments were refused or lost nothing')
})

t.test('a flipped bit in a WAL loses nothing silently: a tear only in the very last record, else CorruptLogError at the damaged record', async t => {
  await fc.assert(fc.asyncProperty(wals, fc.array(fc.tuple(fc.nat(), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), fc.nat(7)), { minLength: 1, maxLength: 4 }), async (intents, flips) => {
    const segments = await writeWal(intents)
    for (const [pick, where, bit] of flips) {
      const target = segments[pick % segments.length]
      const at = Math.floor(where * target.bytes.length)
      const bytes = Buffer.from(target.bytes)
      bytes[at] ^= 1 << bit
      const hit = target.frames.filter(f => f.offset <= at).length - 1
      const { dir, state, error } = await recover(segments.map(seg => seg === target ? { name: seg.name, bytes } : seg))
      if (target === segments.at(-1) && hit === target.frames.length - 1) {
        assert.equal(error, undefined, 'the last record of the newest segment is a torn tail')
        assert.deepEqual(state, stateOf(recordsOf(segments).slice(0, -1)))
      } else {
        assert.ok(error instanceof CorruptLogError, String(error))
        assert.deepEqual([error.file, error.offset], [join(dir, target.name), target.frames[hit].offset])
      }
    }
  }), { numRuns: 120 })
  t.pass('random bit flips in real WAL files recovered a clean prefix or named the damage')
})
