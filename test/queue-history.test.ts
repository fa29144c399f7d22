/**
 * The checker of multi-process queue histories, on hand-made histories: a
 * correct one passes, and each guarantee, broken on purpose (a double ack,
 * a lost acknowledged enqueue, an overlapping claim ...), is reported.
 */
import t from 'tap'
import type { HistoryEntry } from '../testkit/cluster-processes.js'
import { checkQueueHistory, type FinalQueue, type QueueHistoryBounds } from '../testkit/checks/queue-history.js'

const bounds: QueueHistoryBounds = { queue: 'q', maxAttempts: 3, minAcked: 3 }
const common = { workload: 'w1', queue: 'q' }
const owner = (node: number, fence: number): string => `n${node}.${fence}`

const sent = (node: number, id: string, at: number): HistoryEntry => ({ type: 'enqueue-sent', node, at, ...common, id })
const enqueued = (node: number, id: string, at: number): HistoryEntry => ({ type: 'enqueued', node, at, ...common, id, duplicate: false })
const started = (node: number, id: string, fence: number, at: number, valid = true, queue = 'q'): HistoryEntry =>
  ({ type: 'job-started', node, at, ...common, queue, id, fence: BigInt(fence), attempt: 1, owner: owner(node, fence), visibilityMs: 1000, valid })
const ackSent = (node: number, id: string, fence: number, at: number): HistoryEntry =>
  ({ type: 'job-ack-sent', node, at, ...common, id, fence: BigInt(fence), owner: owner(node, fence), heldUntil: at })
const acked = (node: number, id: string, fence: number, at: number): HistoryEntry =>
  ({ type: 'job-acked', node, at, ...common, id, fence: BigInt(fence), owner: owner(node, fence) })
const ackFailed = (node: number, id: string, fence: number, at: number, heldUntil: number, firedAt: number | null): HistoryEntry =>
  ({ type: 'job-ack-failed', node, at, ...common, id, fence: BigInt(fence), owner: owner(node, fence), name: 'ClaimExpiredError', message: 'expired', heldUntil, firedAt })
const lost = (node: number, id: string, fence: number, at: number, heldUntil: number | null, firedAt: number | null = at): HistoryEntry =>
  ({ type: 'job-lost', node, at, ...common, id, fence: BigInt(fence), owner: owner(node, fence), reason: 'lapsed', heldUntil, firedAt })
const killed = (node: number, at: number): HistoryEntry => ({ type: 'killed', node, at, signal: 'SIGKILL' })
const paused = (node: number, at: number): HistoryEntry => ({ type: 'paused', node, at })
const resumed = (node: number, at: number): HistoryEntry => ({ type: 'resumed', node, at })
/** Enqueued on node 0 at `at`, processed on `node` with `fence` and acked 50 ms later. */
const item = (id: string, at: number, node: number, fence: number): HistoryEntry[] =>
  [sent(0, id, at), enqueued(0, id, at + 5), started(node, id, fence, at + 10), ackSent(node, id, fence, at + 50), acked(node, id, fence, at + 55)]

const drained = (acked: number, deadLetters: FinalQueue['deadLetters'] = []): FinalQueue => ({ stats: { depth: 0, inFlight: 0, acked }, deadLetters })

/**
 * a, b, c processed once each. d: its first worker (node 1) is SIGKILLed, its
 * claim expires and node 2 processes it. e: its worker (node 0) is SIGSTOPped,
 * node 2 gets it once the claim lapsed, and after SIGCONT node 0's signal fires
 * late but its last valid() was before the pause. f: its first claim lapses
 * in a running process (signal fired), the ack fails, and it is acked later.
 * g: dead-lettered after 3 attempts. h: an enqueue whose answer never came
 * (not owed an ack), processed anyway.
 */
const correct: HistoryEntry[] = [
  ...item('a', 1000, 0, 10), ...item('b', 1010, 1, 11), ...item('c', 1020, 2, 12),
  sent(1, 'd', 1100), enqueued(1, 'd', 1105), started(1, 'd', 20, 1110), killed(1, 1150), started(2, 'd', 30, 2500), ackSent(2, 'd', 30, 2550), acked(2, 'd', 30, 2560),
  sent(2, 'e', 1200), enqueued(2, 'e', 1205), started(0, 'e', 40, 1210), paused(0, 1250), started(2, 'e', 50, 2600), resumed(0, 4000), lost(0, 'e', 40, 4001, 1240), ackSent(2, 'e', 50, 2650), acked(2, 'e', 50, 2660),
  sent(0, 'f', 1300), enqueued(0, 'f', 1305), started(1, 'f', 60, 1310), ackSent(1, 'f', 60, 2300), ackFailed(1, 'f', 60, 2400, 2290, 2295), started(0, 'f', 70, 2500), ackSent(0, 'f', 70, 2550), acked(0, 'f', 70, 2560),
  sent(0, 'g', 1400), enqueued(0, 'g', 1405), started(1, 'g', 80, 1410), lost(1, 'g', 80, 1500, 1490), started(2, 'g', 90, 1600), lost(2, 'g', 90, 1700, 1690), started(0, 'g', 95, 1800), lost(0, 'g', 95, 1900, 1890),
  sent(1, 'h', 1500), started(2, 'h', 100, 1600), ackSent(2, 'h', 100, 1650), acked(2, 'h', 100, 1660),
  // Another queue's job, never ended, does not count.
  started(0, 'x', 5, 1000, true, 'other')
]
const correctFinal = drained(7, [{ id: 'g', attempts: 3 }])

t.test('a correct history passes', async t => {
  t.same(checkQueueHistory(correct, correctFinal, bounds), [])
  t.same(checkQueueHistory([...correct].reverse(), correctFinal, bounds), [], 'entries are put in time order first')
})

t.test('(a) an acknowledged enqueue never acked nor dead-lettered is reported', async t => {
  const v = checkQueueHistory([...correct, sent(1, 'i', 3000), enqueued(1, 'i', 3010)], correctFinal, bounds)
  t.match(v, [/item i, enqueued at 2010 ms, was never acked nor dead-lettered \(never started\)/])
  const neverAcked = correct.filter(e => !((e.type === 'job-acked' || e.type === 'job-ack-sent') && e.id === 'd'))
  const started = checkQueueHistory(neverAcked, drained(6, [{ id: 'g', attempts: 3 }]), bounds)
  t.match(started, [/item d, enqueued at 105 ms, was never acked nor dead-lettered \(started by n1\.20 \(fence 20, killed\), n2\.30 \(fence 30, open\)\)/])
})

t.test('(a) an item acked only by an ack whose process died is accounted for by the log\'s count of acks, or reported', async t => {
  const unanswered = [...item('a', 1000, 0, 10), ...item('b', 1010, 1, 11), sent(0, 'c', 1020), enqueued(0, 'c', 1025), started(2, 'c', 12, 1030), ackSent(2, 'c', 12, 1070), killed(2, 1075)]
  t.same(checkQueueHistory(unanswered, drained(3), { ...bounds, minAcked: 2 }), [], 'the log counts its ack')
  t.match(checkQueueHistory(unanswered, drained(2), { ...bounds, minAcked: 2 }), [/counts 2 acks, but the history needs at least 3: 2 acked, and 1 enqueued items acked only by acks whose process died before the answer \(c\)/], 'the log does not: it was lost')
  t.match(checkQueueHistory(unanswered, drained(4), { ...bounds, minAcked: 2 }), [/counts 4 acks, more than the 3 items the workers acked or may have acked/], 'an ack too many on the log')
})

t.test('(a) an undrained queue, or a dead letter with attempts left, is reported', async t => {
  t.match(checkQueueHistory(correct, { ...correctFinal, stats: { depth: 1, inFlight: 2, acked: 7 } }, bounds), [/not drained: 1 items queued and 2 in flight/])
  t.match(checkQueueHistory(correct, drained(7, [{ id: 'g', attempts: 2 }]), bounds), [/item g was dead-lettered after 2 attempts, fewer than maxAttempts 3/])
  t.match(checkQueueHistory(correct, drained(7, [{ id: 'g', attempts: 3 }, { id: 'a', attempts: 3 }]), bounds), [/item a is a dead letter but was acked/])
})

t.test('(b) a job started while an earlier claim of the same item was live is reported', async t => {
  // On node 2: node 0 is SIGSTOPped from 1250 to 4000 in `correct`.
  const overlap = [...correct, sent(0, 'j', 3000), enqueued(0, 'j', 3005), started(2, 'j', 200, 3010), started(1, 'j', 210, 3050), lost(2, 'j', 200, 3100, 3090), ackSent(1, 'j', 210, 3150), acked(1, 'j', 210, 3160)]
  t.match(checkQueueHistory(overlap, drained(8, [{ id: 'g', attempts: 3 }]), bounds), [/item j: n1\.210 \(fence 210\) started at 2050 ms while n2\.200 \(fence 200\) held it from 2010 ms to 2100 ms \(lost\)/])
})

t.test('(b) a paused worker whose valid() passes after SIGCONT overlaps the next claim', async t => {
  const late = correct.map(e => e.type === 'job-lost' && e.id === 'e' ? lost(0, 'e', 40, 4001, 4000) : e)
  t.match(checkQueueHistory(late, correctFinal, bounds), [/item e: n2\.50 \(fence 50\) started at 1600 ms while n0\.40 \(fence 40\) held it from 210 ms to 3000 ms \(lost\)/])
})

t.test('(b) a worker frozen just as it started the job (SIGSTOP sent, then the start reported) ends at its last passing valid()', async t => {
  // The harness records the pause before the signal lands: the start can carry a later stamp (seen in CI).
  const race = correct.map(e => e.type === 'paused' && e.node === 0 ? paused(0, 1209.99) : e)
  t.same(checkQueueHistory(race, correctFinal, bounds), [])
  const passedLate = race.map(e => e.type === 'job-lost' && e.id === 'e' ? lost(0, 'e', 40, 4001, 4000) : e)
  t.match(checkQueueHistory(passedLate, correctFinal, bounds), [/item e: .* held it from 210 ms to 3000 ms \(lost\)/], 'valid() passing after SIGCONT still overlaps')
})

t.test('(b) a claim whose signal fires only after the item went elsewhere, in a running process, overlaps', async t => {
  const late = correct.map(e => e.type === 'job-ack-failed' && e.id === 'f' ? ackFailed(1, 'f', 60, 2600, 2290, null) : e)
  t.match(checkQueueHistory(late, correctFinal, bounds), [/item f: n0\.70 \(fence 70\) started at 1500 ms while n1\.60 \(fence 60\) held it from 310 ms to 1600 ms \(ack-failed\)/])
})

t.test('(b) a SIGKILLed worker holds until the kill; a later start with a smaller fence is reported', async t => {
  const early = correct.map(e => e.type === 'killed' && e.node === 1 ? killed(1, 2700) : e)
  t.match(checkQueueHistory(early, correctFinal, bounds), [/item d: n2\.30 .* started at 1500 ms while n1\.20 .* held it from 110 ms to 1700 ms \(killed\)/])
  const fences = correct.map(e => e.type === 'job-started' && e.id === 'd' && e.node === 2 ? { ...e, fence: 15n } : e)
  t.match(checkQueueHistory(fences, correctFinal, bounds), [/item d: fence 15 of n2\.30 started at 1500 ms is not above fence 20 of n1\.20/])
})

t.test('(c) an item acked twice, or started again after its ack, is reported', async t => {
  const twice = [...correct, started(1, 'a', 300, 3000), ackSent(1, 'a', 300, 3050), acked(1, 'a', 300, 3060)]
  t.match(checkQueueHistory(twice, drained(8, [{ id: 'g', attempts: 3 }]), bounds), [
    /item a was acked 2 times: n0\.10 \(fence 10\) at 55 ms, n1\.300 \(fence 300\) at 2060 ms/,
    /item a was started again by n1\.300 \(fence 300\) at 2000 ms after n0\.10 acked it at 55 ms/
  ])
})

t.test('too little progress is reported; a start never valid does not count as a holder', async t => {
  const never = [...item('a', 1000, 0, 10), sent(0, 'b', 1010), enqueued(0, 'b', 1015), started(1, 'b', 11, 1020), started(2, 'b', 9, 1030, false), ackSent(1, 'b', 11, 1060), acked(1, 'b', 11, 1070)]
  t.same(checkQueueHistory(never, drained(2), bounds), ['only 2 items of q acked, expected at least 3'])
})
