/**
 * Checks a recorded multi-process event history (testkit/event-workload.ts)
 * against what `cluster.events` promises, per subscriber process (one start
 * of a node) and publisher start, since a publisher's sequence numbers
 * begin again at 1 when it restarts:
 *
 * - authentic: an event received names the node that published it;
 * - no duplicates: a subscriber's handler gets each event once;
 * - per-publisher order: a publisher start's events arrive in sequence
 *   order, and none of an earlier start after one of a later start;
 * - no silent loss: between two events of a publisher start that a
 *   subscriber received, every sequence number skipped was reported to it
 *   as lost (a `gap`, or an overflow of its queue). Where a subscriber's
 *   sequence of a start begins is not observable (the bus asks the
 *   publisher for its last number on connecting), except when the
 *   subscriber had received events of the publisher's previous start: it
 *   was listening when the new one began, so the new start is owed from 1.
 *   A gap does not name the start it belongs to, so one of the publisher's
 *   gaps covers those numbers in whichever start;
 * - complete at the end: every subscriber alive at the end received (or was
 *   told it lost) the last event of every publisher start alive at the end.
 *   The tail of a start that was killed is excused: what it sent last may
 *   have died with it, and no later event of it reveals the hole;
 * - ordered events (through the Raft log, `seq` is the log index): one
 *   total order: each subscriber gets them in strictly increasing index,
 *   one index is one event everywhere, an event has one index, and a
 *   subscriber misses none between the first it got and the last it got
 *   (or, alive at the end, the last one published).
 */
import type { HistoryEntry } from '../cluster-processes.js'
import { processStarts, startOfTag } from './process-starts.js'

export interface EventHistoryBounds {
  /** The workload made progress: at least this many events received. */
  readonly minReceived: number
  /**
   * The publishers' buffer (EventsOptions.bufferEvents; events small enough
   * that its byte bound never applies). When given, a gap is also checked
   * against it: see {@link needlessGaps}.
   */
  readonly bufferEvents?: number
}

type Entry<T extends HistoryEntry['type']> = Extract<HistoryEntry, { type: T }>

/** Every violation found, each a sentence; empty when the history is correct. */
export function checkEventHistory (history: readonly HistoryEntry[], b: EventHistoryBounds): string[] {
  const starts = processStarts(history)
  const rank = new Map(starts.order.map((s, i) => [s, i]))
  const out: string[] = []
  const published = new Map<string, number>()
  const lastSeq = new Map<string, { seq: number, publisher: string }>()
  const orderedTags = new Map<number, string>()
  const tagIndex = new Map<string, number>()
  const orderedPublished: number[] = []
  const received = new Map<string, Array<Entry<'event-received'>>>()
  const lost = new Map<string, Array<{ from: number, to: number }>>()
  const agree = (index: number, tag: string, where: string): void => {
    const other = orderedTags.get(index)
    if (other !== undefined && other !== tag) out.push(`log index ${index} is ${other} and also ${tag} (${where})`)
    orderedTags.set(index, tag)
    const at = tagIndex.get(tag)
    if (at !== undefined && at !== index) out.push(`ordered event ${tag} has log index ${at} and also ${index} (${where})`)
    tagIndex.set(tag, index)
  }
  for (const e of history) {
    const start = starts.of.get(e) as string
    switch (e.type) {
      case 'event-published':
        if (e.ordered) {
          agree(e.seq, `${e.tag.s}/${e.tag.n}`, `published by ${start}`)
          orderedPublished.push(e.seq)
        } else {
          published.set(`${e.tag.s}/${e.seq}`, e.tag.n)
          lastSeq.set(e.tag.s, { seq: Math.max(lastSeq.get(e.tag.s)?.seq ?? 0, e.seq), publisher: e.tag.w })
        }
        break
      case 'event-received':
        append(received, start, e)
        if (e.ordered) agree(e.seq, `${e.tag.s}/${e.tag.n}`, `received by ${start}`)
        break
      case 'event-gap':
        append(lost, `${start}/${e.publisher}`, { from: e.from, to: e.to })
        break
      case 'event-overflow':
        append(lost, `${start}/${e.publisher}`, { from: e.seq, to: e.seq })
        break
    }
  }

  let total = 0
  for (const [sub, list] of received) {
    total += list.length
    const told = (publisher: string, seq: number): boolean => (lost.get(`${sub}/${publisher}`) ?? []).some(g => g.from <= seq && seq <= g.to)
    const skipped = (publisher: string, from: number, to: number): number[] => {
      const missing: number[] = []
      for (let s = from; s <= to && missing.length < 1000; s++) if (!told(publisher, s)) missing.push(s)
      return missing
    }
    /** Per publisher start: the seqs received, and the latest. */
    const bySource = new Map<string, { all: Set<number>, last: number }>()
    const latestStart = new Map<string, string>()
    for (const e of list.filter(x => !x.ordered)) {
      if (e.publisher !== e.tag.w) out.push(`${sub} received an event from ${e.publisher} that ${e.tag.w} published (${e.tag.s}, seq ${e.seq})`)
      const n = published.get(`${e.tag.s}/${e.seq}`)
      if (n !== undefined && n !== e.tag.n) out.push(`${sub} received seq ${e.seq} of ${e.tag.s} as its event ${e.tag.n}, but it was published as event ${n}`)
      const source = startOfTag(starts, e.tag.s)
      const newest = latestStart.get(e.publisher)
      if (source !== undefined) {
        if (newest !== undefined && (rank.get(source) ?? 0) < (rank.get(newest) ?? 0)) out.push(`${sub} received seq ${e.seq} of ${e.tag.s} after events of ${e.publisher}'s later start ${newest}`)
        else latestStart.set(e.publisher, source)
      }
      const seqs = bySource.get(e.tag.s)
      if (seqs === undefined) {
        // Listening to the publisher's previous start: this start is owed from its first event.
        const followed = source !== undefined && newest !== undefined && newest !== source
        bySource.set(e.tag.s, { all: new Set([e.seq]), last: e.seq })
        const missing = followed ? skipped(e.publisher, 1, e.seq - 1) : []
        if (missing.length > 0) out.push(`${sub} followed ${e.publisher} across its restart, but its new start ${e.tag.s} began for it at seq ${e.seq}: ${range(missing)} neither received nor reported lost`)
        continue
      }
      const prev = seqs.last
      if (seqs.all.has(e.seq)) out.push(`${sub} received seq ${e.seq} of ${e.tag.s} twice`)
      else if (e.seq < prev) out.push(`${sub} received seq ${e.seq} of ${e.tag.s} after seq ${prev}`)
      else {
        const missing = skipped(e.publisher, prev + 1, e.seq - 1)
        if (missing.length > 0) out.push(`${sub} received seq ${prev} then ${e.seq} of ${e.tag.s}: ${range(missing)} neither received nor reported lost`)
      }
      seqs.all.add(e.seq)
      seqs.last = e.seq
    }
    if (starts.alive.has(sub)) {
      for (const [s, { seq: last, publisher }] of lastSeq) {
        const source = startOfTag(starts, s)
        if (source === undefined || !starts.alive.has(source)) continue
        const got = bySource.get(s)
        if (got?.all.has(last) !== true && !told(publisher, last)) out.push(`${sub}, alive at the end, never received seq ${last}, the last event of ${s} (alive too)${got === undefined ? ', nor any other of that start' : `; the last it got was seq ${Math.max(...got.all)}`}`)
      }
    }

    const ordered = list.filter(x => x.ordered).map(x => x.seq)
    for (let i = 1; i < ordered.length; i++) {
      if (ordered[i] <= ordered[i - 1]) out.push(`${sub} received the ordered event at log index ${ordered[i]} after the one at ${ordered[i - 1]}`)
    }
    if (ordered.length > 0) {
      const got = new Set(ordered)
      const end = starts.alive.has(sub) ? Math.max(ordered[ordered.length - 1], ...orderedPublished) : ordered[ordered.length - 1]
      const missing = orderedPublished.filter(i => i > ordered[0] && i <= end && !got.has(i)).sort((x, y) => x - y)
      if (missing.length > 0) out.push(`${sub} missed ordered events at log index ${range(missing)}, between its first (${ordered[0]}) and ${end}`)
    }
  }
  if (total < b.minReceived) out.push(`only ${total} events received, expected at least ${b.minReceived}`)
  if (b.bufferEvents !== undefined) out.push(...needlessGaps(history, b.bufferEvents))
  return out
}

/**
 * Gaps reported for events their publisher's buffer still held: the bus
 * promises to repair from the buffer and to report as lost only what it no
 * longer holds. Judged only where the gap can be placed: the publishing node
 * ran one start from before the subscriber's start until the gap, so the
 * gap is of that start, and that start had published (by its reports, plus
 * one in flight) fewer than `bufferEvents` events after the gap's first.
 */
export function needlessGaps (history: readonly HistoryEntry[], bufferEvents: number): string[] {
  const starts = processStarts(history)
  const out: string[] = []
  const began = new Map<string, number>()
  const nodeStarts = new Map<number, Array<{ start: string, at: number }>>()
  const lastSeq = new Map<string, number>()
  const nodeOf = new Map<string, number>()
  for (const e of history) {
    const start = starts.of.get(e) as string
    if (e.type === 'event-published') nodeOf.set(e.tag.w, e.node)
    if (e.type === 'started') {
      began.set(start, e.at)
      append(nodeStarts, e.node, { start, at: e.at })
    }
    if (e.type === 'event-published' && !e.ordered) lastSeq.set(start, Math.max(lastSeq.get(start) ?? 0, e.seq))
    if (e.type !== 'event-gap') continue
    const current = (nodeStarts.get(nodeOf.get(e.publisher) ?? -1) ?? []).filter(p => p.at <= e.at)
    const source = current[current.length - 1]
    if (source === undefined || source.at > (began.get(start) ?? Infinity)) continue
    const published = (lastSeq.get(source.start) ?? 0) + 1
    if (published - e.from < bufferEvents) out.push(`${start} was told events ${e.from}..${e.to} of ${source.start} were lost, but its buffer of ${bufferEvents} still held them (it had published ${published - 1})`)
  }
  return out
}

/** `3..7, 9` for [3, 4, 5, 6, 7, 9] (sorted). */
function range (xs: readonly number[]): string {
  const parts: string[] = []
  for (let i = 0; i < xs.length;) {
    let j = i
    while (j + 1 < xs.length && xs[j + 1] === xs[j] + 1) j++
    parts.push(i === j ? `${xs[i]}` : `${xs[i]}..${xs[j]}`)
    i = j + 1
  }
  return parts.join(', ')
}

/** Adds `v` to the list under `k`. */
function append<K, V> (m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k)
  if (list === undefined) m.set(k, [v])
  else list.push(v)
}
