/**
 * The events history checker on hand-made histories: each process gets
 * every event of every other process that ran to the end, once and in order;
 * a duplicate, a reordering and a silent loss are each reported, a loss the
 * bus reported (a gap) is counted instead, and a killed publisher's events
 * are owed to nobody.
 */
import t from 'tap'
import type { HistoryEntry } from '../testkit/cluster-processes.js'
import { checkEventHistory } from '../testkit/checks/event-history.js'

const ids = ['n1', 'n2']
const common = { workload: 'w1', topic: 'e' }
const started = (node: number, pid: number, at: number): HistoryEntry => ({ type: 'started', node, pid, at })
const exited = (node: number, at: number): HistoryEntry => ({ type: 'exited', node, at, code: null, signal: 'SIGKILL' })
const published = (node: number, pid: number, n: number, at: number): HistoryEntry => ({ type: 'event-published', node, at, ...common, incarnation: `${ids[node]}.${pid}`, n, seq: n })
const received = (node: number, from: number, pid: number, n: number, at: number): HistoryEntry => ({ type: 'event-received', node, at, ...common, publisher: ids[from], seq: n, incarnation: `${ids[from]}.${pid}`, n })
const gap = (node: number, from: number, seqFrom: number, seqTo: number, at: number): HistoryEntry => ({ type: 'event-gap', node, at, publisher: ids[from], from: seqFrom, to: seqTo })

/** Both processes publish 1..3 at 100, 200, 300 (+node); each receives all six. */
function good (): HistoryEntry[] {
  const h: HistoryEntry[] = [started(0, 10, 0), started(1, 20, 0)]
  for (let n = 1; n <= 3; n++) {
    for (const p of [0, 1]) {
      h.push(published(p, p === 0 ? 10 : 20, n, n * 100 + p))
      for (const r of [0, 1]) h.push(received(r, p, p === 0 ? 10 : 20, n, n * 100 + p + 1 + r))
    }
  }
  return h
}
const without = (h: HistoryEntry[], drop: (e: HistoryEntry) => boolean): HistoryEntry[] => h.filter(e => !drop(e))
const isReceipt = (r: number, p: number, n: number) => (e: HistoryEntry): boolean => e.type === 'event-received' && e.node === r && e.publisher === ids[p] && e.n === n

t.test('a complete, ordered history passes', async t => {
  const c = checkEventHistory(good(), 'e', ids)
  t.same(c.violations, [])
  // Owed: each event whose publisher's previous one resolved after the receiver subscribed (by its own first publish, at
  // 100 and 101). n1 is owed #2 and #3 of both; n2 is owed n1's #3 (n1's #2 may have gone out before n2 subscribed) and its own #2, #3.
  t.equal(c.delivered, 7)
})

t.test('a killed publisher\'s undelivered events are owed to nobody', async t => {
  const h = [...without(good(), isReceipt(1, 0, 3)), exited(0, 400)]
  t.same(checkEventHistory(h, 'e', ids).violations, [])
})

t.test('a loss the bus reported is counted, not a violation', async t => {
  const h = [...without(good(), isReceipt(1, 0, 3)), gap(1, 0, 3, 3, 350)]
  const c = checkEventHistory(h, 'e', ids)
  t.same(c.violations, [])
  t.equal(c.reportedLost, 1)
})

t.test('each planted fault is reported', async t => {
  t.match(checkEventHistory(without(good(), isReceipt(1, 0, 3)), 'e', ids).violations, [/n2\.20 never received 1 events of n1\.10 \(none reported lost\): #3/])
  t.match(checkEventHistory([...good(), received(0, 1, 20, 3, 500)], 'e', ids).violations, [/n1\.10 received event n2\.20#3 twice/])
  t.match(checkEventHistory([...good(), received(0, 1, 20, 2, 500)], 'e', ids).violations, [/n1\.10 received event n2\.20#2 at 500 ms after n2\.20#3: out of publisher order/])
})
