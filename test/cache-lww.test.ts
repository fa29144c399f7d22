/**
 * The replicated cache's merge rule, checked with generated writes: the
 * state a node ends in depends only on which writes it applied, not on
 * their order or how often each came (what lets gossip and anti-entropy
 * deliver in any order, with repeats); the digest of equal states is
 * equal, and the digest kept as versions change is the one built from
 * every version held, through evictions and expiry too; and the hybrid
 * clock never goes backwards.
 */
import { deepStrictEqual, ok } from 'node:assert/strict'
import fc from 'fast-check'
import t from 'tap'
import { PROTOCOL_VERSION } from '../gossip/handshake.js'
import { bucketOf, DIGEST_BUCKETS, DIGEST_BYTES, hashVersion } from '../lib/cache/digest.js'
import { compareHlc, HybridClock, type Hlc } from '../lib/cache/hlc.js'
import { LocalStore } from '../lib/cache/local-store.js'
import { murmur3 } from '../lib/cache/murmur3.js'
import { LwwState } from '../lib/cache/lww-state.js'

type Write = { op: 'set', key: string, value: number, hlc: Hlc } | { op: 'delete', key: string, hlc: Hlc } | { op: 'clear', hlc: Hlc }

const hlcArb = fc.record({ ms: fc.integer({ min: 1, max: 20 }), c: fc.integer({ min: 0, max: 3 }), node: fc.constantFrom('a', 'b', 'c') })
const writeArb: fc.Arbitrary<Write> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), key: fc.constantFrom('k1', 'k2', 'k3'), value: fc.integer(), hlc: hlcArb }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom('k1', 'k2', 'k3'), hlc: hlcArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const), hlc: hlcArb }) }
)
/** Writes with distinct timestamps, as real ones are (a clock never stamps twice). */
const writesArb = fc.uniqueArray(writeArb, { selector: w => `${w.hlc.ms}.${w.hlc.c}.${w.hlc.node}`, maxLength: 30 })

const enc = new TextEncoder()

function apply (writes: readonly Write[]): LwwState<number> {
  const s = new LwwState<number>({ maxEntries: 1000, tombstoneTtlMs: 60_000, clock: () => 0 })
  for (const w of writes) {
    if (w.op === 'set') s.set(w.key, w.key, enc.encode(w.key), w.value, w.hlc)
    else if (w.op === 'delete') s.delete(w.key, enc.encode(w.key), w.hlc)
    else s.clear(w.hlc)
  }
  return s
}

/** Every version held, entries and tombstones. */
function versionsOf (s: LwwState<number>): Array<{ id: string, keyBytes: Uint8Array, hlc: Hlc }> {
  // The tests' ids are their keys, whose bytes are their UTF-8.
  return [...s.live.entries()].map(([id, e]) => ({ id, keyBytes: enc.encode(id), hlc: e.hlc as Hlc })).concat([...s.tombstones].map(([id, t]) => ({ id, keyBytes: enc.encode(id), hlc: t.hlc })))
}

/** The digest built from scratch, and each bucket's keys: what the kept index must equal. */
function rebuilt (s: LwwState<number>): { digest: string, buckets: Map<number, string[]> } {
  const digest = Buffer.alloc(DIGEST_BYTES)
  const buckets = new Map<number, string[]>()
  for (const v of versionsOf(s)) {
    const h = hashVersion(v.keyBytes, v.hlc)
    digest.writeUInt32LE((digest.readUInt32LE(h.bucket * 8) ^ h.lo) >>> 0, h.bucket * 8)
    digest.writeUInt32LE((digest.readUInt32LE(h.bucket * 8 + 4) ^ h.hi) >>> 0, h.bucket * 8 + 4)
    buckets.set(h.bucket, [...(buckets.get(h.bucket) ?? []), v.id].sort())
  }
  return { digest: digest.toString('hex'), buckets }
}

/** Checks the kept digest and bucket index against the rebuilt ones. */
function checkIndex (s: LwwState<number>): void {
  const want = rebuilt(s)
  deepStrictEqual(Buffer.from(s.digest()).toString('hex'), want.digest, 'the kept digest is the rebuilt one')
  for (const v of versionsOf(s)) {
    const b = bucketOf(v.keyBytes)
    deepStrictEqual(s.versions.keysIn(b).sort(), want.buckets.get(b), `the keys of bucket ${b}`)
  }
}

function view (s: LwwState<number>): unknown {
  checkIndex(s)
  const live = [...s.live.entries()].map(([id, e]) => JSON.stringify([id, e.value, e.hlc])).sort()
  const tombs = [...s.tombstones.entries()].map(([id, e]) => JSON.stringify([id, e.hlc])).sort()
  return { live, tombs, floor: JSON.stringify(s.floor), digest: rebuilt(s).digest }
}

t.test('the end state is the same whatever the order and repeats of the writes', async t => {
  fc.assert(fc.property(writesArb, fc.func(fc.integer()), fc.array(fc.nat()), (writes, rank, repeats) => {
    const shuffled = [...writes].sort((x, y) => rank(x) - rank(y))
    const withRepeats = [...shuffled, ...repeats.filter(i => i < writes.length).map(i => writes[i])]
    deepStrictEqual(view(apply(withRepeats)), view(apply(writes)))
  }), { numRuns: 500 })
  t.pass('500 generated histories')
})

t.test('merging two nodes\' states gives the state of all their writes (anti-entropy)', async t => {
  fc.assert(fc.property(writesArb, fc.nat(), (writes, cut) => {
    const split = cut % (writes.length + 1)
    const a = writes.slice(0, split)
    const b = writes.slice(split)
    // a node that applied a, then hears b; and the other way round
    deepStrictEqual(view(apply([...a, ...b])), view(apply([...b, ...a])))
    deepStrictEqual(view(apply([...a, ...b, ...a])), view(apply(writes)), 'idempotent')
  }), { numRuns: 300 })
  t.pass('300 generated cases')
})

t.test('the kept digest follows evictions, expiry, tombstone collection and clears', async t => {
  type Step = Write | { op: 'time', ms: number } | { op: 'collect' } | { op: 'read', key: string }
  const keyArb = fc.constantFrom('k1', 'k2', 'k3', 'k4')
  const stepArb: fc.Arbitrary<Step> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant('set' as const), key: keyArb, value: fc.integer(), hlc: hlcArb }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), key: keyArb, hlc: hlcArb }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const), hlc: hlcArb }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('time' as const), ms: fc.integer({ min: 1, max: 10 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('collect' as const) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('read' as const), key: keyArb }) }
  )
  const optsArb = fc.record({ maxEntries: fc.integer({ min: 1, max: 4 }), ttlMs: fc.option(fc.integer({ min: 1, max: 15 }), { nil: undefined }), idleMs: fc.option(fc.integer({ min: 1, max: 15 }), { nil: undefined }) })
  // Time in units of 1 ms, or of 700 ms: deadlines then fall in different one-second buckets of the store's expiry wheel.
  fc.assert(fc.property(optsArb, fc.constantFrom(1, 700), fc.array(stepArb, { maxLength: 40 }), (o, unit, steps) => {
    let now = 0
    const s = new LwwState<number>({ maxEntries: o.maxEntries, ttlMs: o.ttlMs === undefined ? undefined : o.ttlMs * unit, idleMs: o.idleMs === undefined ? undefined : o.idleMs * unit, tombstoneTtlMs: 8 * unit, clock: () => now })
    for (const w of steps) {
      if (w.op === 'set') s.set(w.key, w.key, enc.encode(w.key), w.value, { ...w.hlc, ms: w.hlc.ms * unit })
      else if (w.op === 'delete') s.delete(w.key, enc.encode(w.key), { ...w.hlc, ms: w.hlc.ms * unit })
      else if (w.op === 'clear') s.clear({ ...w.hlc, ms: w.hlc.ms * unit })
      else if (w.op === 'time') now += w.ms * unit
      else if (w.op === 'collect') s.collectTombstones()
      else s.live.get(w.key)
      checkIndex(s)
    }
  }), { numRuns: 500 })
  t.pass('500 generated histories')
})

t.test('the buckets\' key lists stay within twice the keys held while keys come and go', async t => {
  const s = new LwwState<number>({ maxEntries: 100, tombstoneTtlMs: 0, clock: () => 0 })
  let over = 0
  let most = 0
  for (let i = 0; i < 20_000; i++) {
    const id = `k${i}`
    s.set(id, id, enc.encode(id), i, { ms: 1, c: i, node: 'a' })
    // Every other key is deleted and its tombstone collected at once: churn of both kinds.
    if (i % 2 === 0) {
      s.delete(id, enc.encode(id), { ms: 2, c: i, node: 'a' })
      s.collectTombstones()
    }
    const held = s.live.size + s.tombstones.size
    most = Math.max(most, s.versions.listed)
    // Each bucket's list is at most twice its keys plus two (plus one evicted key whose removal was noted while the store still listed it).
    if (s.versions.listed > 2 * held + 3 * DIGEST_BUCKETS) over++
  }
  t.equal(s.live.size, 100, 'evictions kept the cache at its bound')
  t.equal(over, 0, `the lists stayed within their bound (at most ${most} ids listed)`)
  checkIndex(s)
})

t.test('an entry read after it was stored is dropped at its later idle deadline, not at the first one', async t => {
  let now = 0
  const dropped: string[] = []
  const store = new LocalStore<number>({ maxEntries: 10, idleMs: 1500, clock: () => now, onDrop: (_e, id) => { dropped.push(id) } })
  store.set('a', { key: 'a', value: 1, hlc: null, expiresAt: Infinity })
  store.set('b', { key: 'b', value: 2, hlc: null, expiresAt: 1200 })
  now = 1000
  t.equal(store.get('a')?.value, 1, 'read at 1 s: idle until 2.5 s')
  t.equal(store.get('b')?.value, 2, 'read at 1 s: still expires at 1.2 s')
  now = 1600
  store.dropExpired()
  t.same(dropped, ['b'], 'at 1.6 s only b is due')
  now = 2300
  store.dropExpired()
  t.same(dropped, ['b'], 'at 2.3 s a has been idle 1.3 s')
  now = 2600
  store.dropExpired()
  t.same(dropped, ['b', 'a'], 'a has been idle 1.5 s at 2.5 s')
  t.equal(store.size, 0)
})

t.test('MurmurHash3 (x86, 32-bit) gives the reference values', async t => {
  const m = (text: string, seed: number): string => { const b = enc.encode(text); return murmur3(b, b.length, seed).toString(16) }
  t.equal(m('', 0), '0')
  t.equal(m('', 1), '514e28b7')
  t.equal(m('', 0xffffffff), '81f16f39')
  t.equal(m('abc', 0), 'b3dd93fa')
  t.equal(m('hello', 0), '248bfa47')
  t.equal(m('aaaa', 0x9747b28c), '5a97808a')
  t.equal(m('Hello, world!', 0x9747b28c), '24884cba')
  t.equal(m('The quick brown fox jumps over the lazy dog', 0), '2e4ff723')
})

t.test('a version\'s place in the digest is pinned: a change must bump PROTOCOL_VERSION (nodes hashing differently would resend whole caches every round)', async t => {
  const keyBytes = enc.encode('patient:42')
  const hlc = { ms: 1733380000000, c: 3, node: 'n2' }
  t.equal(PROTOCOL_VERSION, 5, 'the protocol version this hash is pinned for (the hash came with 3)')
  t.equal(bucketOf(keyBytes), 547)
  t.equal(hashVersion(keyBytes, hlc).bucket, 547)
  const s = new LwwState<number>({ maxEntries: 10, tombstoneTtlMs: 60_000, clock: () => 0 })
  s.set('p', 'patient:42', keyBytes, 1, hlc)
  const digest = s.digest()
  t.equal(Buffer.from(digest.subarray(547 * 8, 547 * 8 + 8)).toString('hex'), 'c2a9f8f8d3563657', 'the version\'s 8 bytes, in its bucket')
  t.equal(digest.filter(b => b !== 0).length, 8 - [...digest.subarray(547 * 8, 547 * 8 + 8)].filter(b => b === 0).length, 'and nothing else')
  // Any counter the codec admits (a safe integer) hashes, and tells versions apart.
  t.not(hashVersion(keyBytes, { ...hlc, c: 2 ** 40 }).lo, hashVersion(keyBytes, { ...hlc, c: 2 ** 40 + 1 }).lo)
})

t.test('the winner of two writes to one key is the greater timestamp', async t => {
  fc.assert(fc.property(hlcArb, hlcArb, fc.integer(), fc.integer(), (h1, h2, v1, v2) => {
    fc.pre(compareHlc(h1, h2) !== 0)
    const s1 = apply([{ op: 'set', key: 'k', value: v1, hlc: h1 }, { op: 'set', key: 'k', value: v2, hlc: h2 }])
    deepStrictEqual(s1.live.get('k')?.value, compareHlc(h1, h2) > 0 ? v1 : v2)
    deepStrictEqual(Math.sign(compareHlc(h1, h2)), -Math.sign(compareHlc(h2, h1)), 'the order is antisymmetric')
  }), { numRuns: 300 })
  t.pass('300 generated cases')
})

t.test('the hybrid clock is strictly increasing and passes every timestamp it observes', async t => {
  fc.assert(fc.property(fc.array(fc.oneof(fc.record({ wall: fc.integer({ min: 0, max: 50 }) }), fc.record({ wall: fc.integer({ min: 0, max: 50 }), seen: hlcArb }))), steps => {
    let wall = 0
    const clock = new HybridClock('x', () => wall)
    let last: Hlc = { ms: -1, c: 0, node: 'x' }
    for (const step of steps) {
      wall = step.wall
      if ('seen' in step) {
        clock.observe(step.seen)
        const next = clock.now()
        ok(compareHlc(next, step.seen) > 0, 'after observing, later than what was seen')
        last = next
      } else {
        const next = clock.now()
        ok(compareHlc(next, last) > 0, 'later than the last')
        last = next
      }
    }
  }), { numRuns: 300 })
  t.pass('300 generated cases')
})
