/**
 * Checks the events recorded by an events workload on every node
 * (testkit/cluster-node.ts: each process subscribes, then publishes
 * `{ incarnation, n }` on the same topic) against what the event bus
 * promises:
 *
 * - per-publisher order: each receiving process gets each publishing
 *   process's events once, in the order they were published (n strictly
 *   increasing);
 * - complete: a process running at the end received every event published
 *   by a process also running at the end, from the first one published
 *   after it subscribed, unless the bus reported it lost (`gap`: no longer in
 *   the publisher's bounded buffer), which is counted, not a violation.
 *
 * Events of a publisher that was killed are owed to nobody: `publish`
 * resolves once the event is handed to gossipsub, and a repair needs the
 * publisher's buffer, which died with it.
 */
import type { HistoryEntry } from '../cluster-processes.js'

type Entry<T extends HistoryEntry['type']> = Extract<HistoryEntry, { type: T }>

export interface EventCheck {
  readonly violations: string[]
  /** Events owed to live receivers that the bus reported lost (gaps). */
  readonly reportedLost: number
  /** Events owed and delivered. */
  readonly delivered: number
}

/** One start of one node's process, from its `started` entry to its `exited` entry (or the end). */
interface Incarnation {
  readonly node: number
  readonly pid: number
  readonly from: number
  to: number
}

export function checkEventHistory (history: readonly HistoryEntry[], topic: string, nodeIds: readonly string[]): EventCheck {
  const entries = [...history].sort((x, y) => x.at - y.at)
  const t0 = entries[0]?.at ?? 0
  const ms = (at: number): string => `${Math.round(at - t0)} ms`
  const violations: string[] = []
  const runs: Incarnation[] = []
  const current = new Map<number, Incarnation>()
  for (const e of entries) {
    if (e.type === 'started') {
      const r = { node: e.node, pid: e.pid, from: e.at, to: Infinity }
      runs.push(r)
      current.set(e.node, r)
    } else if (e.type === 'exited') {
      const r = current.get(e.node)
      if (r !== undefined) r.to = e.at
      current.delete(e.node)
    }
  }
  const runAt = (node: number, at: number): Incarnation | undefined => runs.find(r => r.node === node && r.from <= at && at <= r.to)
  const name = (r: Incarnation): string => `${nodeIds[r.node]}.${r.pid}`

  const published = new Map<string, Array<Entry<'event-published'>>>()
  const received = new Map<Incarnation, Map<string, Array<Entry<'event-received'>>>>()
  const gaps = new Map<Incarnation, Array<Entry<'event-gap'>>>()
  const subscribedBy = new Map<Incarnation, number>()
  for (const e of entries) {
    if (e.type === 'event-published' && e.topic === topic) {
      published.set(e.incarnation, [...published.get(e.incarnation) ?? [], e])
      const r = runAt(e.node, e.at)
      if (r !== undefined && !subscribedBy.has(r)) subscribedBy.set(r, e.at)
    } else if (e.type === 'event-received' && e.topic === topic) {
      const r = runAt(e.node, e.at)
      if (r === undefined) continue
      const byPublisher = received.get(r) ?? new Map<string, Array<Entry<'event-received'>>>()
      received.set(r, byPublisher)
      byPublisher.set(e.incarnation, [...byPublisher.get(e.incarnation) ?? [], e])
    } else if (e.type === 'event-gap') {
      const r = runAt(e.node, e.at)
      if (r !== undefined) gaps.set(r, [...gaps.get(r) ?? [], e])
    }
  }

  // Order: once each, n increasing, per receiving process and publishing process.
  for (const [r, byPublisher] of received) {
    for (const [p, got] of byPublisher) {
      for (let i = 1; i < got.length; i++) {
        if (got[i].n === got[i - 1].n) violations.push(`${name(r)} received event ${p}#${got[i].n} twice (${ms(got[i - 1].at)}, ${ms(got[i].at)})`)
        else if (got[i].n < got[i - 1].n) violations.push(`${name(r)} received event ${p}#${got[i].n} at ${ms(got[i].at)} after ${p}#${got[i - 1].n}: out of publisher order`)
      }
    }
  }

  // Completeness, between processes that both ran to the end.
  let reportedLost = 0
  let delivered = 0
  const live = runs.filter(r => r.to === Infinity)
  for (const receiver of live) {
    const subscribed = subscribedBy.get(receiver)
    if (subscribed === undefined) continue
    for (const publisher of live) {
      const p = name(publisher)
      const sent = published.get(p) ?? []
      const got = new Set((received.get(receiver)?.get(p) ?? []).map(e => e.n))
      const missing: number[] = []
      for (let i = 0; i < sent.length; i++) {
        // Owed once the publisher's previous event resolved after the subscription: this one was sent later.
        const prev = i === 0 ? (sent[i].n === 1 ? publisher.from : -Infinity) : sent[i - 1].at
        if (prev < subscribed) continue
        if (got.has(sent[i].n)) { delivered++; continue }
        const lost = (gaps.get(receiver) ?? []).some(g => g.publisher === nodeIds[publisher.node] && g.from <= sent[i].seq && sent[i].seq <= g.to)
        if (lost) reportedLost++
        else missing.push(sent[i].n)
      }
      if (missing.length > 0) violations.push(`${name(receiver)} never received ${missing.length} events of ${p} (none reported lost): #${missing.slice(0, 8).join(', #')}${missing.length > 8 ? ' ...' : ''}`)
    }
  }
  return { violations, reportedLost, delivered }
}
