/**
 * The checker of multi-process lock histories, on hand-made histories: a
 * correct one passes, and each property, broken on purpose, is reported.
 */
import t from 'tap'
import type { HistoryEntry } from '../testkit/cluster-processes.js'
import { checkLockHistory, type LockHistoryBounds } from '../testkit/checks/lock-history.js'

const bounds: LockHistoryBounds = { lock: 'job', sessionTtlMs: 2000, regrantSlackMs: 1000, minGrants: 3 }

const granted = (node: number, fence: number, at: number, valid = true, lock = 'job'): HistoryEntry =>
  ({ type: 'granted', node, at, workload: 'w1', lock, fence: BigInt(fence), owner: `n${node}.${fence}`, requestedAt: at - 5, valid })
const released = (node: number, fence: number, at: number): HistoryEntry =>
  ({ type: 'released', node, at, workload: 'w1', lock: 'job', fence: BigInt(fence), owner: `n${node}.${fence}` })
const lost = (node: number, fence: number, at: number, heldUntil: number | null): HistoryEntry =>
  ({ type: 'lost', node, at, workload: 'w1', lock: 'job', fence: BigInt(fence), owner: `n${node}.${fence}`, reason: 'lease lapsed', heldUntil })
const killed = (node: number, at: number): HistoryEntry => ({ type: 'killed', node, at, signal: 'SIGKILL' })
const paused = (node: number, at: number): HistoryEntry => ({ type: 'paused', node, at })
const resumed = (node: number, at: number): HistoryEntry => ({ type: 'resumed', node, at })

/** Three holders taking turns, then node 1 is SIGKILLed holding fence 40 and node 2 gets the lock after the TTL. */
const correct: HistoryEntry[] = [
  granted(0, 10, 1000), released(0, 10, 1100),
  granted(1, 12, 1110), released(1, 12, 1200),
  granted(2, 14, 1210), released(2, 14, 1300),
  granted(1, 40, 1310), killed(1, 1350),
  granted(2, 45, 3500), released(2, 45, 3600),
  // Node 0 is SIGSTOPped holding fence 50; its lease lapses, node 2 gets the lock; after SIGCONT its signal fires late, but its last passing valid() check was before the pause.
  granted(0, 50, 3700), paused(0, 3720), granted(2, 55, 5800), resumed(0, 6000), lost(0, 50, 6001, 3715), released(2, 55, 5900),
  // An entry of another lock does not count.
  granted(0, 3, 1150, true, 'other')
]

t.test('a correct history passes', async t => {
  t.same(checkLockHistory(correct, bounds), [])
  t.same(checkLockHistory([...correct].reverse(), bounds), [], 'entries are put in time order first')
})

t.test('a fence that does not increase is reported', async t => {
  const v = checkLockHistory([...correct, granted(0, 55, 7000), released(0, 55, 7100)], bounds)
  t.equal(v.length, 1)
  t.match(v[0], /fence 55 granted to n0\.55 .* is not above fence 55/)
})

t.test('overlapping holders are reported', async t => {
  const v = checkLockHistory([granted(0, 10, 1000), granted(1, 12, 1050), released(0, 10, 1100), released(1, 12, 1200), granted(2, 14, 1300), released(2, 14, 1400)], bounds)
  t.equal(v.length, 1)
  t.match(v[0], /n1\.12 \(fence 12\) was granted at 50 ms while n0\.10 \(fence 10\) held the lock from 0 ms to 100 ms \(released\)/)
})

t.test('a holder whose signal fires after the lock was granted elsewhere, in a running process, overlaps', async t => {
  const v = checkLockHistory([granted(0, 10, 1000), granted(1, 12, 2900), lost(0, 10, 3000, 2990), released(1, 12, 3100), granted(2, 14, 3200), released(2, 14, 3300)], bounds)
  t.equal(v.length, 1)
  t.match(v[0], /n1\.12 .* while n0\.10 .* to 2000 ms \(lost\)/)
})

t.test('a holder frozen just as it was granted (SIGSTOP sent, then the grant reported) ends at its last passing valid()', async t => {
  const base = [paused(0, 999.99), granted(0, 10, 1000), granted(1, 12, 3200), resumed(0, 4000), released(1, 12, 4100), granted(2, 14, 4200), released(2, 14, 4300), granted(1, 16, 4400), released(1, 16, 4500)]
  t.same(checkLockHistory([...base, lost(0, 10, 4010, 1000)], bounds), [])
  t.equal(checkLockHistory([...base, lost(0, 10, 4010, 4005)], bounds).length, 1, 'valid() passing after SIGCONT still overlaps')
})

t.test('a paused holder whose valid() passes after SIGCONT overlaps', async t => {
  const v = checkLockHistory([granted(0, 10, 1000), paused(0, 1100), granted(1, 12, 3200), resumed(0, 4000), lost(0, 10, 4010, 4005), released(1, 12, 4100), granted(2, 14, 4200), released(2, 14, 4300)], bounds)
  t.equal(v.length, 1)
  t.match(v[0], /n1\.12 .* while n0\.10 .* to 3005 ms/)
})

t.test('a SIGKILLed holder holds until the kill', async t => {
  const v = checkLockHistory([granted(0, 10, 1000), granted(1, 12, 1500), killed(0, 2000), released(1, 12, 1600), granted(2, 14, 3000), released(2, 14, 3100)], bounds)
  t.equal(v.length, 1)
  t.match(v[0], /n1\.12 .* while n0\.10 .* to 1000 ms \(killed\)/)
})

t.test('a SIGKILLed holder\'s lock granted too late, or never, is reported', async t => {
  const late = checkLockHistory([granted(0, 10, 1000), released(0, 10, 1100), granted(1, 12, 1200), released(1, 12, 1300), granted(0, 14, 1400), killed(0, 1500), granted(1, 20, 4600), released(1, 20, 4700)], bounds)
  t.same(late, ['the lock of n0.14 (fence 14), SIGKILLed at 500 ms, was granted again only 3100 ms later (bound 3000 ms)'])
  const never = checkLockHistory([granted(0, 10, 1000), released(0, 10, 1100), granted(1, 12, 1200), released(1, 12, 1300), granted(0, 14, 1400), killed(0, 1500)], bounds)
  t.same(never, ['the lock of n0.14 (fence 14), SIGKILLed at 500 ms, was never granted again'])
  const notHolding = checkLockHistory([granted(0, 10, 1000), released(0, 10, 1100), killed(0, 1150), granted(1, 12, 1200), released(1, 12, 1300), granted(2, 14, 1400), released(2, 14, 1500)], bounds)
  t.same(notHolding, [], 'a node killed while not holding needs no re-grant')
})

t.test('too little progress is reported; a grant never valid does not count', async t => {
  const v = checkLockHistory([granted(0, 10, 1000), released(0, 10, 1100), granted(1, 12, 1200, false), lost(1, 12, 1201, null), granted(2, 14, 1300), released(2, 14, 1400)], bounds)
  t.same(v, ['only 2 usable grants of job, expected at least 3'])
})
