/**
 * The cache history checkers on hand-made histories: correct ones pass,
 * and each planted fault is reported.
 */
import t from 'tap'
import type { HistoryEntry, WriteTag } from '../testkit/cluster-processes.js'
import { checkInvalidationCache, checkReplicatedCache, type FinalCache } from '../testkit/checks/cache-history.js'

const R = 'rep'
const I = 'inv'
let clock = 0
const at = (): number => ++clock
const started = (node: number, pid: number): HistoryEntry => ({ type: 'started', pid, node, at: at() })
const exited = (node: number): HistoryEntry => ({ type: 'exited', code: null, signal: 'SIGKILL', node, at: at() })
const tag = (node: number, pid: number, n: number): WriteTag => ({ w: `n${node + 1}`, s: `n${node + 1}.${pid}`, n })
const set = (node: number, key: string, t: WriteTag): HistoryEntry => ({ type: 'cache-write', workload: 'w1', cache: R, key, op: 'set', tag: t, node, at: at() })
const del = (node: number, key: string, t: WriteTag): HistoryEntry => ({ type: 'cache-write', workload: 'w1', cache: R, key, op: 'delete', tag: t, node, at: at() })
const read = (node: number, key: string, value: WriteTag | null): HistoryEntry => ({ type: 'cache-read', workload: 'w1', cache: R, key, value, node, at: at() })
const applied = (node: number, key: string, value: WriteTag | null): HistoryEntry => ({ type: 'cache-change', workload: 'w1', cache: R, key, op: value === null ? 'delete' : 'set', value, node, at: at() })
const final = (node: number, entries: Array<[string, WriteTag]>): FinalCache => ({ node, entries })
const bounds = { cache: R, minWrites: 1, minRemoteChanges: 0 }

// n1 writes a1, n2 sees it and overwrites it with b1, n1 sees b1, n2 deletes k2 after n1 set it.
const a1 = tag(0, 100, 1)
const b1 = tag(1, 200, 1)
const a2 = tag(0, 100, 2)
const b2 = tag(1, 200, 2)
const base = (): HistoryEntry[] => [
  started(0, 100), started(1, 200),
  set(0, 'k', a1),
  applied(1, 'k', a1),
  read(1, 'k', a1),
  set(1, 'k', b1),
  applied(0, 'k', b1),
  set(0, 'k2', a2),
  applied(1, 'k2', a2),
  del(1, 'k2', b2)
]

t.test('replicated: a correct history passes', async t => {
  t.same(checkReplicatedCache(base(), [final(0, [['k', b1]]), final(1, [['k', b1]])], bounds), [])
})

t.test('replicated: two concurrent writes may end either way', async t => {
  const h = [started(0, 100), started(1, 200), set(0, 'k', a1), set(1, 'k', b1), applied(0, 'k', b1), applied(1, 'k', b1)]
  t.same(checkReplicatedCache(h, [final(0, [['k', b1]]), final(1, [['k', b1]])], bounds), [])
  t.same(checkReplicatedCache(h, [final(0, [['k', a1]]), final(1, [['k', a1]])], bounds), [])
})

t.test('replicated: nodes that differ after heal have not converged', async t => {
  t.match(checkReplicatedCache(base(), [final(0, [['k', b1]]), final(1, [['k', a1]])], bounds), [/n1 and n2 did not converge: k is n2\.200\/1 against n1\.100\/1/, /n2 holds n1's write 1 .* for k, but the write n2's write 1 .* came after it and survives/])
})

t.test('replicated: a value no node wrote is reported', async t => {
  const forged = tag(2, 300, 9)
  t.match(checkReplicatedCache([...base(), read(0, 'k', forged)], [final(0, [['k', b1]]), final(1, [['k', b1]])], bounds), [/n1#1 read n3's write 9 .* which no node wrote/])
  t.match(checkReplicatedCache(base(), [final(0, [['k', forged]]), final(1, [['k', forged]])], bounds), [/n1 holds .* which no node wrote/, /n2 holds .* which no node wrote/])
})

t.test('replicated: a write that loses to the one it saw is reported', async t => {
  t.match(checkReplicatedCache(base(), [final(0, [['k', a1]]), final(1, [['k', a1]])], bounds), [/n1 holds n1's write 1 .* for k, but the write n2's write 1 .* came after it and survives/, /n2 holds/])
})

t.test('replicated: a deleted key that comes back, and a key lost without a later delete, are reported', async t => {
  t.match(checkReplicatedCache(base(), [final(0, [['k', b1], ['k2', a2]]), final(1, [['k', b1], ['k2', a2]])], bounds), [/n1 holds n1's write 2 .* for k2, but the delete n2's write 2 .* came after it/, /n2 holds/])
  t.match(checkReplicatedCache(base(), [final(0, []), final(1, [])], bounds), [/n1 holds nothing for k, but n\d's write 1 .* survives and no delete of k can be later than it/, /n2 holds nothing for k/])
})

t.test('replicated: a write whose every holder died may be gone, one seen by a live node may not', async t => {
  const c1 = tag(2, 300, 1)
  const h = [...base(), started(2, 300), applied(2, 'k', b1), set(2, 'k', c1), exited(2)]
  t.same(checkReplicatedCache(h, [final(0, [['k', b1]]), final(1, [['k', b1]])], bounds), [])
  t.match(checkReplicatedCache([...h.slice(0, -1), applied(0, 'k', c1), h[h.length - 1]], [final(0, [['k', b1]]), final(1, [['k', b1]])], bounds), [/n1 holds n2's write 1 .* but the write n3's write 1 .* came after it and survives/, /n2 holds/])
})

t.test('replicated: going back to a superseded value is reported, through what another node saw too', async t => {
  // n3 saw b1 (which n2 wrote after seeing a1), then wrote c1 to another key: n1, having seen c1, must never read a1 again.
  const c1 = tag(2, 300, 1)
  const h = [...base(), started(2, 300), applied(2, 'k', b1), set(2, 'other', c1), applied(0, 'other', c1), read(0, 'k', a1)]
  t.match(checkReplicatedCache(h, [final(0, [['k', b1], ['other', c1]]), final(1, [['k', b1], ['other', c1]]), final(2, [['k', b1], ['other', c1]])], bounds), [/n1#1 read n1's write 1 .* for k after it had made or seen n2's write 1/])
})

t.test('replicated: too little work is reported', async t => {
  t.match(checkReplicatedCache(base(), [final(0, [['k', b1]])], { cache: R, minWrites: 100, minRemoteChanges: 100 }), [/only 4 writes/, /only 3 remote changes/])
})

const invWrite = (node: number, key: string, version: number): HistoryEntry => ({ type: 'inv-write', workload: 'w1', cache: I, key, version, node, at: at() })
const invRead = (node: number, key: string, version: number, startedAt = at()): HistoryEntry => ({ type: 'inv-read', workload: 'w1', cache: I, key, version, startedAt, node, at: at() })
const notice = (node: number, key: string): HistoryEntry => ({ type: 'cache-change', workload: 'w1', cache: I, key, op: 'delete', value: null, node, at: at() })
const invBounds = { cache: I, minReads: 1, minBoundReads: 0 }

t.test('invalidation: a correct history passes', async t => {
  const h = [
    started(0, 100), started(1, 200),
    invWrite(0, 'a', 1), notice(1, 'a'), invRead(1, 'a', 1),
    invWrite(0, 'b', 1), invWrite(0, 'a', 2),
    // Not yet told of a's second write: the old copy may still be served.
    invRead(1, 'a', 1),
    notice(1, 'b'), notice(1, 'a'), invRead(1, 'a', 2), invRead(0, 'a', 2)
  ]
  t.same(checkInvalidationCache(h, { ...invBounds, minBoundReads: 2 }), [])
})

t.test('invalidation: a stale read after a later invalidation of the same writer is reported', async t => {
  // n2 heard of b's write (after a's second one) but still serves a's first version: a's invalidation was lost silently.
  const h = [
    started(0, 100), started(1, 200),
    invWrite(0, 'a', 1), notice(1, 'a'), invRead(1, 'a', 1),
    invWrite(0, 'a', 2), invWrite(0, 'b', 1), notice(1, 'b'),
    invRead(1, 'a', 1)
  ]
  t.match(checkInvalidationCache(h, invBounds), [/n2#1 read version 1 of a .* older than version 2 invalidated by n1/])
})

t.test('invalidation: the writer\'s own node must read its writes, also after a restart', async t => {
  const h = [started(0, 100), invWrite(0, 'a', 1), invWrite(0, 'a', 2), exited(0), started(0, 101), invRead(0, 'a', 1)]
  t.match(checkInvalidationCache(h, invBounds), [/n1#2 read version 1 of a .* older than version 2 written on this node/])
})

t.test('invalidation: nothing is asked of a node before its first notice from a writer, nor of a notice that could be a later write', async t => {
  // n2 restarted and may have loaded a=1 before n1 knew of its subscription; its only notice may be a's third write.
  const early = [started(0, 100), started(1, 200), invWrite(0, 'a', 1), invWrite(0, 'a', 2), invRead(1, 'a', 1), invWrite(0, 'a', 3), notice(1, 'a'), invRead(1, 'a', 1)]
  t.same(checkInvalidationCache(early, invBounds), [])
  // Two notices of a may be its first two writes, heard late: nothing after them is owed yet.
  const two = [started(0, 100), started(1, 200), invWrite(0, 'a', 1), invWrite(0, 'a', 2), notice(1, 'a'), invWrite(0, 'a', 3), notice(1, 'a'), invRead(1, 'a', 2)]
  t.same(checkInvalidationCache(two, invBounds), [])
  // A third can only be the third write: every version since the first notice is owed.
  t.match(checkInvalidationCache([...two.slice(0, -1), notice(1, 'a'), invRead(1, 'a', 2)], invBounds), [/read version 2 of a .* older than version 3/])
})

t.test('invalidation: the one version a writer killed before its report may have written is no forgery', async t => {
  const h = [started(0, 100), started(1, 200), invWrite(0, 'a', 1), invRead(1, 'a', 2)]
  t.match(checkInvalidationCache(h, invBounds), [/n2#1 read version 2 of a, which was never written/])
  t.same(checkInvalidationCache([...h.slice(0, 3), exited(0), h[3]], invBounds), [])
  t.match(checkInvalidationCache([...h.slice(0, 3), exited(0), invRead(1, 'a', 3)], invBounds), [/read version 3 of a, which was never written/])
})

t.test('invalidation: a version never written, a key with two writers, and too little work are reported', async t => {
  const h = [started(0, 100), started(1, 200), invWrite(0, 'a', 1), invWrite(1, 'a', 2), invRead(1, 'a', 7)]
  t.match(checkInvalidationCache(h, { cache: I, minReads: 5, minBoundReads: 1 }), [/a was written by n1 and n2/, /n2#1 read version 7 of a, which was never written/, /only 1 reads/, /only 0 reads .* were bound/])
})
