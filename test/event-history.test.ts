/**
 * The event history checker on hand-made histories: correct ones pass, and
 * each planted fault is reported.
 */
import t from 'tap'
import type { HistoryEntry, WriteTag } from '../testkit/cluster-processes.js'
import { checkEventHistory } from '../testkit/checks/event-history.js'

let clock = 0
const at = (): number => ++clock
const started = (node: number, pid: number): HistoryEntry => ({ type: 'started', pid, node, at: at() })
const exited = (node: number): HistoryEntry => ({ type: 'exited', code: null, signal: 'SIGKILL', node, at: at() })
const tag = (node: number, pid: number, n: number): WriteTag => ({ w: `n${node + 1}`, s: `n${node + 1}.${pid}`, n })
const pub = (node: number, pid: number, n: number, seq = n, ordered = false): HistoryEntry => ({ type: 'event-published', workload: 'w1', topic: `ev.n${node + 1}`, tag: tag(node, pid, n), seq, ordered, node, at: at() })
const got = (node: number, from: number, pid: number, n: number, seq = n, ordered = false): HistoryEntry => ({ type: 'event-received', workload: 'w1', topic: `ev.n${from + 1}`, publisher: `n${from + 1}`, seq, tag: tag(from, pid, n), ordered, node, at: at() })
const gap = (node: number, from: number, first: number, last: number): HistoryEntry => ({ type: 'event-gap', workload: 'w1', publisher: `n${from + 1}`, from: first, to: last, node, at: at() })

/** n1 publishes 1..3; n1 and n2 receive them (n2 is told 2 was lost). */
const base = (): HistoryEntry[] => [
  started(0, 100), started(1, 200),
  pub(0, 100, 1), got(0, 0, 100, 1), got(1, 0, 100, 1),
  pub(0, 100, 2), got(0, 0, 100, 2),
  pub(0, 100, 3), got(0, 0, 100, 3), gap(1, 0, 2, 2), got(1, 0, 100, 3)
]
const bounds = { minReceived: 1 }

t.test('a correct history passes', async t => {
  t.same(checkEventHistory(base(), bounds), [])
})

t.test('a subscriber that joined late owes nothing before its first event', async t => {
  t.same(checkEventHistory([...base(), started(2, 300), pub(0, 100, 4), got(0, 0, 100, 4), got(1, 0, 100, 4), got(2, 0, 100, 4)], bounds), [])
})

t.test('a duplicate, a reordering, a silent hole and a forged publisher are reported', async t => {
  t.match(checkEventHistory([...base(), got(1, 0, 100, 3)], bounds), [/n2#1 received seq 3 of n1.100 twice/])
  t.match(checkEventHistory([...base(), got(1, 0, 100, 2, 2)], bounds), [/n2#1 received seq 2 of n1.100 after seq 3/])
  const silent = base().filter(e => e.type !== 'event-gap')
  t.match(checkEventHistory(silent, bounds), [/n2#1 received seq 1 then 3 of n1.100: 2 neither received nor reported lost/])
  const forged: HistoryEntry = { ...got(1, 0, 100, 4) as Extract<HistoryEntry, { type: 'event-received' }>, publisher: 'n2' }
  t.match(checkEventHistory([...base(), pub(0, 100, 4), got(0, 0, 100, 4), forged], bounds), [/n2#1 received an event from n2 that n1 published/])
  t.match(checkEventHistory([...base(), pub(0, 100, 4), got(0, 0, 100, 4), got(1, 0, 100, 9, 4)], bounds), [/received seq 4 of n1.100 as its event 9, but it was published as event 4/])
})

t.test('every live subscriber must get the last event of every live publisher', async t => {
  t.match(checkEventHistory([...base(), pub(0, 100, 4), got(0, 0, 100, 4)], bounds), [/n2#1, alive at the end, never received seq 4, the last event of n1.100 \(alive too\); the last it got was seq 3/])
  t.same(checkEventHistory([...base(), pub(0, 100, 4), got(0, 0, 100, 4), gap(1, 0, 4, 4)], bounds), [])
  // The publisher died: its tail may have died with it.
  t.same(checkEventHistory([...base(), pub(0, 100, 4), exited(0)], bounds), [])
})

t.test('a subscriber that followed a publisher across its restart is owed the new start from seq 1', async t => {
  const restart = [...base(), exited(0), started(0, 101), pub(0, 101, 1), got(0, 0, 101, 1), pub(0, 101, 2), got(0, 0, 101, 2)]
  t.same(checkEventHistory([...restart, got(1, 0, 101, 1), got(1, 0, 101, 2)], bounds), [])
  t.match(checkEventHistory([...restart, got(1, 0, 101, 2)], bounds), [/n2#1 followed n1 across its restart, but its new start n1.101 began for it at seq 2: 1 neither received nor reported lost/])
  t.match(checkEventHistory([...restart, got(1, 0, 101, 1), got(1, 0, 101, 2), got(1, 0, 100, 3, 3)], bounds), [/n2#1 received seq 3 of n1.100 after events of n1's later start n1#2/, /n2#1 received seq 3 of n1.100 twice/])
})

t.test('ordered events: one total order, no holes', async t => {
  const ordered = [
    started(0, 100), started(1, 200),
    pub(0, 100, 1, 10, true), pub(1, 200, 1, 12, true), pub(0, 100, 2, 15, true),
    got(0, 0, 100, 1, 10, true), got(0, 1, 200, 1, 12, true), got(0, 0, 100, 2, 15, true),
    got(1, 0, 100, 1, 10, true), got(1, 1, 200, 1, 12, true), got(1, 0, 100, 2, 15, true)
  ]
  t.same(checkEventHistory(ordered, bounds), [])
  const swapped = [...ordered.slice(0, 8), ordered[9], ordered[8], ordered[10]]
  t.match(checkEventHistory(swapped, bounds), [/n2#1 received the ordered event at log index 10 after the one at 12/])
  t.match(checkEventHistory(ordered.filter((_, i) => i !== 9), bounds), [/n2#1 missed ordered events at log index 12, between its first \(10\) and 15/])
  t.match(checkEventHistory([...ordered.slice(0, -1), got(1, 1, 200, 1, 15, true)], bounds), [/log index 15 is n1.100\/2 and also n2.200\/1/, /ordered event n2.200\/1 has log index 12 and also 15/])
  t.match(checkEventHistory([...ordered, pub(0, 100, 3, 20, true)], bounds), [/n1#1 missed ordered events at log index 20/, /n2#1 missed ordered events at log index 20/])
})

t.test('with the buffer\'s size given, a gap for events the publisher still held is reported', async t => {
  t.same(checkEventHistory(base(), { ...bounds, bufferEvents: 1 }), [])
  t.match(checkEventHistory(base(), { ...bounds, bufferEvents: 10 }), [/n2#1 was told events 2..2 of n1#1 were lost, but its buffer of 10 still held them \(it had published 3\)/])
  // A gap after the publisher restarted may be of its previous start, whose buffer died with it.
  const restarted = [started(0, 100), started(1, 200), pub(0, 100, 1), got(0, 0, 100, 1), got(1, 0, 100, 1), exited(0), started(0, 101), pub(0, 101, 1), got(0, 0, 101, 1), gap(1, 0, 2, 5), got(1, 0, 101, 1)]
  t.same(checkEventHistory(restarted, { ...bounds, bufferEvents: 10 }), [])
})

t.test('too few events received is reported', async t => {
  t.match(checkEventHistory(base(), { minReceived: 100 }), [/only 5 events received/])
})
