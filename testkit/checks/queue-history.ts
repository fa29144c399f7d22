/**
 * Checks a recorded multi-process queue history (testkit/cluster-processes.ts,
 * produce and process workloads on one queue) against what a queue promises:
 *
 * (a) no acknowledged enqueue is lost: once the workers have drained the
 *     queue, every id whose enqueue resolved was acked, or is a dead letter
 *     whose attempts were spent;
 * (b) an item is never held by two live claims at once: of two starts of the
 *     same id, the earlier job had ended before the later began, and the
 *     later carries the larger fence;
 * (c) each item is acked at most once, and never started again after it was.
 *
 * A job's interval runs from the moment its handler began (if `valid()`
 * passed then) to the moment its worker stopped being the holder: its ack
 * resolving, or its signal firing (or `valid()` turning false, if seen
 * first), or the SIGKILL (or exit) of its process if it never said. As in
 * the lock checker, a process that was SIGSTOPped while holding is the
 * exception: its timers run only after SIGCONT, so its signal fires after
 * the item has rightly gone elsewhere; what must hold then is that it did
 * nothing as the holder after the claim lapsed, so its interval ends at its
 * last passing `valid()` check (`heldUntil`).
 *
 * An ack whose answer never came (its process was SIGKILLed between sending
 * it and hearing back) may or may not have been applied: the history alone
 * cannot say whether its item was acked or lost. The queue's own count of
 * acks settles it in aggregate: it must cover every acked item the history
 * shows plus every such unanswered one that nothing else accounts for.
 */
import type { HistoryEntry } from '../cluster-processes.js'
import { Pauses } from './pauses.js'

export interface QueueHistoryBounds {
  readonly queue: string
  /** The queue's maxAttempts: a dead letter with fewer attempts than this was dead-lettered early. */
  readonly maxAttempts: number
  /** The workload made progress: at least this many items acked. */
  readonly minAcked: number
}

/** The queue as one node saw it after the faults stopped and the workers drained it (see QueueState). */
export interface FinalQueue {
  readonly stats: { readonly depth: number, readonly inFlight: number, readonly acked: number }
  readonly deadLetters: ReadonlyArray<{ readonly id: string, readonly attempts: number }>
}

/** One start of a job and how long its worker could act on it. */
export interface JobHolding {
  readonly node: number
  readonly id: string
  readonly owner: string
  readonly fence: bigint
  readonly start: number
  /** -Infinity: never usable (valid() was false at once); Infinity: still held when the history ends. */
  end: number
  ended: 'acked' | 'ack-failed' | 'lost' | 'killed' | 'exited' | 'open'
}

type Entry<T extends HistoryEntry['type']> = Extract<HistoryEntry, { type: T }>

/** Every violation found, each a sentence naming the jobs and times; empty when the history is correct. */
export function checkQueueHistory (history: readonly HistoryEntry[], final: FinalQueue, b: QueueHistoryBounds): string[] {
  const entries = [...history].sort((x, y) => x.at - y.at)
  const t0 = entries[0]?.at ?? 0
  const ms = (at: number): string => Number.isFinite(at) ? `${Math.round(at - t0)} ms` : String(at)
  const mine = <T extends HistoryEntry['type']>(type: T): Array<Entry<T>> =>
    entries.filter((e): e is Entry<T> => e.type === type && 'queue' in e && e.queue === b.queue)
  const violations: string[] = []

  const holdings = jobIntervals(entries, b.queue)
  const byId = new Map<string, JobHolding[]>()
  for (const h of holdings) byId.set(h.id, [...byId.get(h.id) ?? [], h])
  const acks = new Map<string, Array<Entry<'job-acked'>>>()
  for (const a of mine('job-acked')) acks.set(a.id, [...acks.get(a.id) ?? [], a])

  // (b) one live claim at a time, fences increasing.
  for (const [id, hs] of byId) {
    const usable = hs.filter(h => h.end > h.start).sort((x, y) => x.start - y.start)
    let longest: JobHolding | undefined
    let prev: JobHolding | undefined
    for (const h of usable) {
      if (longest !== undefined && h.start < longest.end) {
        violations.push(`item ${id}: ${h.owner} (fence ${h.fence}) started at ${ms(h.start)} while ${longest.owner} (fence ${longest.fence}) held it from ${ms(longest.start)} to ${ms(longest.end)} (${longest.ended})`)
      }
      if (prev !== undefined && h.fence <= prev.fence) {
        violations.push(`item ${id}: fence ${h.fence} of ${h.owner} started at ${ms(h.start)} is not above fence ${prev.fence} of ${prev.owner} started at ${ms(prev.start)}`)
      }
      if (longest === undefined || h.end > longest.end) longest = h
      prev = h
    }
  }

  // (c) acked at most once, and not worked on again after.
  for (const [id, as] of acks) {
    if (as.length > 1) violations.push(`item ${id} was acked ${as.length} times: ${as.map(a => `${a.owner} (fence ${a.fence}) at ${ms(a.at)}`).join(', ')}`)
    const again = (byId.get(id) ?? []).find(h => h.end > h.start && h.start > as[0].at)
    if (again !== undefined) violations.push(`item ${id} was started again by ${again.owner} (fence ${again.fence}) at ${ms(again.start)} after ${as[0].owner} acked it at ${ms(as[0].at)}`)
  }

  // (a) no acknowledged enqueue lost.
  const dead = new Map(final.deadLetters.map(d => [d.id, d]))
  for (const d of final.deadLetters) {
    if (d.attempts < b.maxAttempts) violations.push(`item ${d.id} was dead-lettered after ${d.attempts} attempts, fewer than maxAttempts ${b.maxAttempts}`)
    if (acks.has(d.id)) violations.push(`item ${d.id} is a dead letter but was acked at ${ms((acks.get(d.id) as Array<Entry<'job-acked'>>)[0].at)}`)
  }
  if (final.stats.depth > 0 || final.stats.inFlight > 0) violations.push(`the queue was not drained: ${final.stats.depth} items queued and ${final.stats.inFlight} in flight at the end`)
  const unanswered = unansweredAcks(entries, b.queue)
  const enqueued = new Set(mine('enqueued').map(e => e.id))
  const unaccounted = [...enqueued].filter(id => !acks.has(id) && !dead.has(id))
  const lost = unaccounted.filter(id => !unanswered.has(id))
  for (const id of lost) {
    const sent = mine('enqueued').find(e => e.id === id) as Entry<'enqueued'>
    const starts = byId.get(id) ?? []
    violations.push(`item ${id}, enqueued at ${ms(sent.at)}, was never acked nor dead-lettered (${starts.length === 0 ? 'never started' : `started by ${starts.map(h => `${h.owner} (fence ${h.fence}, ${h.ended})`).join(', ')}`})`)
  }
  // Each of the others was acked by the ack that went unanswered, or lost: only the log's count of acks can tell.
  const maybe = unaccounted.filter(id => unanswered.has(id))
  const needed = acks.size + maybe.length
  if (final.stats.acked < needed) {
    violations.push(`the queue counts ${final.stats.acked} acks, but the history needs at least ${needed}: ${acks.size} acked, and ${maybe.length} enqueued items acked only by acks whose process died before the answer (${maybe.slice(0, 10).join(', ')}${maybe.length > 10 ? ' ...' : ''}), some of which were lost`)
  }
  const possible = new Set([...acks.keys(), ...unanswered]).size
  if (final.stats.acked > possible) {
    violations.push(`the queue counts ${final.stats.acked} acks, more than the ${possible} items the workers acked or may have acked: some item was acked twice on the log`)
  }

  if (acks.size < b.minAcked) violations.push(`only ${acks.size} items of ${b.queue} acked, expected at least ${b.minAcked}`)
  return violations
}

/** Each start of a job of `queue` with the end of its worker's interval (see the file comment); `entries` sorted by time. */
export function jobIntervals (entries: readonly HistoryEntry[], queue: string): JobHolding[] {
  const holdings: JobHolding[] = []
  const open = new Map<string, JobHolding>()
  const pauses = new Pauses()
  const close = (owner: string, ended: JobHolding['ended'], end: (h: JobHolding) => number): void => {
    const h = open.get(owner)
    if (h === undefined) return
    open.delete(owner)
    h.ended = ended
    h.end = end(h)
  }
  for (const e of entries) {
    pauses.see(e)
    switch (e.type) {
      case 'job-started': {
        if (e.queue !== queue) break
        const h: JobHolding = { node: e.node, id: e.id, owner: e.owner, fence: e.fence, start: e.at, end: e.valid ? Infinity : -Infinity, ended: 'open' }
        holdings.push(h)
        if (e.valid) open.set(e.owner, h)
        else h.ended = 'lost'
        break
      }
      case 'job-acked':
        if (e.queue === queue) close(e.owner, 'acked', () => e.at)
        break
      case 'job-ack-failed':
        if (e.queue === queue) close(e.owner, 'ack-failed', h => pauses.during(e.node, h.start, e.at) ? e.heldUntil : e.firedAt ?? e.at)
        break
      case 'job-lost':
        if (e.queue === queue) close(e.owner, 'lost', h => pauses.during(e.node, h.start, e.at) ? e.heldUntil ?? -Infinity : e.firedAt ?? e.at)
        break
      case 'killed':
      case 'exited':
        if (e.type === 'killed' && e.signal !== 'SIGKILL') break
        for (const h of [...open.values()]) if (h.node === e.node) close(h.owner, e.type, () => e.at)
        break
    }
  }
  return holdings
}

/** Ids whose ack was sent but never answered: the worker's process died first. */
function unansweredAcks (entries: readonly HistoryEntry[], queue: string): Set<string> {
  const sent = new Map<string, string>()
  for (const e of entries) {
    if (!('queue' in e) || e.queue !== queue) continue
    if (e.type === 'job-ack-sent') sent.set(e.owner, e.id)
    else if (e.type === 'job-acked' || e.type === 'job-ack-failed') sent.delete(e.owner)
  }
  return new Set(sent.values())
}
