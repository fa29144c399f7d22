/**
 * The replicated cache's merge rule, checked with generated writes: the
 * state a node ends in depends only on which writes it applied, not on
 * their order or how often each came (what lets gossip and anti-entropy
 * deliver in any order, with repeats); the digest of equal states is
 * equal; and the hybrid clock never goes backwards.
 */
import { deepStrictEqual, ok } from 'node:assert/strict'
import fc from 'fast-check'
import t from 'tap'
import { DigestCache } from '../lib/cache/digest.js'
import { compareHlc, HybridClock, type Hlc } from '../lib/cache/hlc.js'
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
    else if (w.op === 'delete') s.delete(w.key, w.key, enc.encode(w.key), w.hlc)
    else s.clear(w.hlc)
  }
  return s
}

function view (s: LwwState<number>): unknown {
  const live = [...s.live.entries()].map(([id, e]) => JSON.stringify([id, e.value, e.hlc])).sort()
  const tombs = [...s.tombstones.entries()].map(([id, e]) => JSON.stringify([id, e.hlc])).sort()
  const versions = [...s.live.entries()].map(([id, e]) => ({ id, keyBytes: e.keyBytes, hlc: e.hlc as Hlc })).concat([...s.tombstones].map(([id, t]) => ({ id, ...t })))
  return { live, tombs, floor: JSON.stringify(s.floor), digest: Buffer.from(new DigestCache().build(versions)).toString('hex') }
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
