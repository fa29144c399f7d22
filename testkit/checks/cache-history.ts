/**
 * Checks a recorded multi-process cache history (testkit/cache-workload.ts)
 * against what the two cache modes promise.
 *
 * Replicated (last writer wins by hybrid logical clock). The clock is not
 * observable, but part of its order is: a write is stamped above every
 * write its node had made or applied before it (the node's clock observes
 * each version it applies). So write x precedes write y ("x → y") when y's
 * process had made x, or seen x (a read or a remote change showing x's
 * tag), or had seen a write that x precedes, before it made y; every such
 * pair has x's stamp below y's. Within one start of a node only: a
 * restarted node's clock is not tied to its previous start's. Then:
 *
 * - converged: once the faults are over, every live node holds the same
 *   entries (the caller polls before it calls; see FinalCache);
 * - provenance: every value held or read was written by some node;
 * - last writer wins: no held value x, and no absence of a key, is
 *   contradicted by a surviving write y with x → y (for an absence: a set
 *   that every delete of the key precedes). A write survives if its
 *   process, or a process that saw it, is alive at the end: a write whose
 *   every holder died before passing it on may rightly be gone;
 * - no going back: a process never reads (or applies) x after it made or
 *   saw a y with x → y (its own writes included).
 *
 * Invalidation (truth in a database, one writer node per key; see
 * checkInvalidationCache).
 */
import type { HistoryEntry } from '../cluster-processes.js'
import type { WriteTag } from '../cluster-node-protocol.js'
import { processStarts } from './process-starts.js'

export interface ReplicatedCacheBounds {
  readonly cache: string
  /** The workload made progress: at least this many writes. */
  readonly minWrites: number
  /** Gossip did its part: at least this many remote changes seen. */
  readonly minRemoteChanges: number
}

/** One live node's entries of the cache after the faults ended and the nodes had time to converge. */
export interface FinalCache {
  readonly node: number
  readonly entries: ReadonlyArray<readonly [string, WriteTag]>
}

type Entry<T extends HistoryEntry['type']> = Extract<HistoryEntry, { type: T }>

interface Write {
  readonly tag: WriteTag
  readonly key: string
  readonly op: 'set' | 'delete'
  readonly start: string
  /** Per writer start, the highest write number its process had made or seen before this one. */
  before: Map<string, number>
}

const id = (t: WriteTag): string => `${t.s}/${t.n}`
const show = (t: WriteTag | null): string => t === null ? 'no value' : `${t.w}'s write ${t.n} (${t.s})`

/** Every violation found, each a sentence; empty when the history is correct. */
export function checkReplicatedCache (history: readonly HistoryEntry[], finals: readonly FinalCache[], b: ReplicatedCacheBounds): string[] {
  const starts = processStarts(history)
  const out: string[] = []
  const steps = new Map<string, Array<Entry<'cache-write'> | Entry<'cache-read'> | Entry<'cache-change'>>>()
  const writes = new Map<string, Write>()
  let remoteChanges = 0
  for (const e of history) {
    if ((e.type !== 'cache-write' && e.type !== 'cache-read' && e.type !== 'cache-change') || e.cache !== b.cache) continue
    const start = starts.of.get(e) as string
    append(steps, start, e)
    if (e.type === 'cache-change') remoteChanges++
    if (e.type === 'cache-write') writes.set(id(e.tag), { tag: e.tag, key: e.key, op: e.op, start, before: new Map() })
  }
  const precedes = orderWrites(steps, writes)

  const seenBy = new Map<string, Set<string>>()
  for (const [start, list] of steps) {
    for (const e of list) {
      const t = e.type === 'cache-write' ? null : e.value
      if (t === null) continue
      if (!writes.has(id(t))) out.push(`${start} ${e.type === 'cache-read' ? 'read' : 'applied'} ${show(t)} for ${e.key}, which no node wrote`)
      else seenBy.set(id(t), (seenBy.get(id(t)) ?? new Set()).add(start))
    }
  }
  const survives = (w: Write): boolean => starts.alive.has(w.start) || [...seenBy.get(id(w.tag)) ?? []].some(s => starts.alive.has(s))

  // No going back within a process.
  for (const [start, list] of steps) {
    const known = new Map<string, WriteTag[]>()
    for (const e of list) {
      const t = e.type === 'cache-write' ? e.tag : e.value
      if (t === null || !writes.has(id(t))) continue
      const later = (known.get(e.key) ?? []).find(u => precedes(t, u))
      if (later !== undefined && e.type !== 'cache-write') out.push(`${start} ${e.type === 'cache-read' ? 'read' : 'applied'} ${show(t)} for ${e.key} after it had made or seen ${show(later)}, which supersedes it`)
      append(known, e.key, t)
    }
  }

  // Converged.
  const label = (t: unknown): string => typeof t === 'object' && t !== null ? id(t as WriteTag) : JSON.stringify(t)
  const text = (f: FinalCache): string => JSON.stringify(f.entries.map(([k, t]) => [k, label(t)]))
  for (const f of finals.slice(1)) {
    if (text(f) === text(finals[0])) continue
    const a = new Map(finals[0].entries.map(([k, t]) => [k, label(t)]))
    const c = new Map(f.entries.map(([k, t]) => [k, label(t)]))
    const keys = [...new Set([...a.keys(), ...c.keys()])].filter(k => a.get(k) !== c.get(k))
    out.push(`n${finals[0].node + 1} and n${f.node + 1} did not converge: ${keys.slice(0, 5).map(k => `${k} is ${a.get(k) ?? 'absent'} against ${c.get(k) ?? 'absent'}`).join(', ')}${keys.length > 5 ? ` (and ${keys.length - 5} more keys)` : ''}`)
  }

  // Provenance and last writer wins, on each live node's entries.
  const byKey = new Map<string, Write[]>()
  for (const w of writes.values()) if (survives(w)) append(byKey, w.key, w)
  for (const f of finals) {
    const held = new Map(f.entries)
    for (const [key, t] of held) {
      if (typeof t !== 'object' || t === null || !writes.has(id(t))) {
        out.push(`n${f.node + 1} holds ${JSON.stringify(t)} for ${key}, which no node wrote`)
        continue
      }
      const newer = (byKey.get(key) ?? []).find(y => precedes(t, y.tag))
      if (newer !== undefined) out.push(`n${f.node + 1} holds ${show(t)} for ${key}, but ${newer.op === 'delete' ? 'the delete' : 'the write'} ${show(newer.tag)} came after it and survives`)
    }
    for (const [key, ws] of byKey) {
      if (held.has(key)) continue
      const deletes = [...writes.values()].filter(d => d.key === key && d.op === 'delete')
      const lost = ws.find(y => y.op === 'set' && deletes.every(d => precedes(d.tag, y.tag)))
      if (lost !== undefined) out.push(`n${f.node + 1} holds nothing for ${key}, but ${show(lost.tag)} survives and no delete of ${key} can be later than it`)
    }
  }

  if (writes.size < b.minWrites) out.push(`only ${writes.size} writes to ${b.cache}, expected at least ${b.minWrites}`)
  if (remoteChanges < b.minRemoteChanges) out.push(`only ${remoteChanges} remote changes of ${b.cache} seen, expected at least ${b.minRemoteChanges}`)
  return out
}

/**
 * Computes, for every write, what its process had made or seen before it
 * (per writer start, the highest write number: a start's writes are made in
 * number order, so knowing one means knowing the earlier ones), to a fixed
 * point, since a write's knowledge depends on that of the writes seen before
 * it. Returns "x → y".
 */
function orderWrites (steps: ReadonlyMap<string, ReadonlyArray<Entry<'cache-write'> | Entry<'cache-read'> | Entry<'cache-change'>>>, writes: ReadonlyMap<string, Write>): (x: WriteTag, y: WriteTag) => boolean {
  const merge = (into: Map<string, number>, from: ReadonlyMap<string, number>): void => {
    for (const [s, n] of from) if ((into.get(s) ?? 0) < n) into.set(s, n)
  }
  for (let changed = true, rounds = 0; changed && rounds < 1000; rounds++) {
    changed = false
    for (const list of steps.values()) {
      const known = new Map<string, number>()
      for (const e of list) {
        const t = e.type === 'cache-write' ? e.tag : e.value
        if (t === null) continue
        const w = writes.get(id(t))
        if (w === undefined) continue
        if (e.type === 'cache-write') {
          if ([...known].some(([s, n]) => (w.before.get(s) ?? 0) < n)) {
            merge(w.before, known)
            changed = true
          }
        } else {
          merge(known, w.before)
        }
        if ((known.get(t.s) ?? 0) < t.n) known.set(t.s, t.n)
      }
    }
  }
  return (x, y) => id(x) !== id(y) && (writes.get(id(y))?.before.get(x.s) ?? 0) >= x.n
}

export interface InvalidationCacheBounds {
  readonly cache: string
  readonly minReads: number
  /** The property was put to the test: at least this many reads on one node bound by another node's invalidation. */
  readonly minBoundReads: number
}

/**
 * An invalidation cache in front of a database in which each key has one
 * writer node: it writes a new version to the database, then invalidates
 * the key (reported as `inv-write` between the two). A read (getOrLoad) that
 * began after its node could know of an invalidation must not return an
 * older version than that invalidation's write:
 *
 * - on the writer's own node (any start): every write of the key reported
 *   before the read began (the invalidation is local and immediate, the
 *   database durable);
 * - on another node: gossip delivers one writer's invalidations in order, or
 *   reports a gap (and the cache drops every copy), and a node that was cut
 *   off drops every copy when it reconnects. So once a process has been
 *   told (a remote change) of a writer's invalidation y, it has taken in
 *   every invalidation of that writer before y, back to the first one it
 *   heard of: none of those may be served stale by a read that begins after
 *   it was told of y. Invalidations carry no version, so which write each
 *   notice was is unknown: the checker takes the earliest possible y (the
 *   leftmost embedding of the notices in the writer's sequence), and the
 *   latest possible first one (the rightmost), so it asks no more than the
 *   cache promises. Before a process's first notice from a writer nothing is
 *   required of it: the writer may not yet know it subscribes (gossipsub).
 *
 * Also: no read returns a version nobody wrote (but for the one a writer
 * killed between its database write and its report may have left).
 */
export function checkInvalidationCache (history: readonly HistoryEntry[], b: InvalidationCacheBounds): string[] {
  const starts = processStarts(history)
  const out: string[] = []
  const owner = new Map<string, number>()
  const sequence = new Map<number, Array<Entry<'inv-write'>>>()
  for (const e of history) {
    if (e.type !== 'inv-write' || e.cache !== b.cache) continue
    if (owner.has(e.key) && owner.get(e.key) !== e.node) out.push(`${e.key} was written by n${(owner.get(e.key) as number) + 1} and n${e.node + 1}: the workload gives each key one writer`)
    owner.set(e.key, e.node)
    append(sequence, e.node, e)
  }
  // A writer killed between its database write and its report leaves that one version unreported.
  const topVersion = new Map<string, number>()
  for (const ws of sequence.values()) for (const w of ws) topVersion.set(w.key, Math.max(topVersion.get(w.key) ?? 0, w.version))
  const lastWrite = new Map<string, number>()
  history.forEach((e, i) => { if (e.type === 'inv-write' && e.cache === b.cache) lastWrite.set(e.key, i) })
  const killedAfter = (node: number, key: string): boolean => history.some((e, i) => i > (lastWrite.get(key) ?? -1) && e.node === node && e.type === 'exited')

  const perStart = new Map<string, Array<Entry<'inv-read'> | Entry<'cache-change'>>>()
  for (const e of history) {
    if ((e.type !== 'inv-read' && e.type !== 'cache-change') || e.cache !== b.cache) continue
    const start = starts.of.get(e) as string
    append(perStart, start, e)
  }
  let reads = 0
  let bound = 0
  for (const [start, list] of perStart) {
    const node = Number(start.slice(1, start.indexOf('#'))) - 1
    // Per writer node: the notices this process got, placed at their earliest and latest possible writes.
    const placed = new Map<number, Array<{ at: number, earliest: number, latest: number }>>()
    for (const [writer, seq] of sequence) {
      if (writer === node) continue
      const notices = list.filter((e): e is Entry<'cache-change'> => e.type === 'cache-change' && owner.get(e.key) === writer)
      placed.set(writer, embed(notices, seq))
    }
    for (const r of list) {
      if (r.type !== 'inv-read') continue
      reads++
      const writer = owner.get(r.key)
      const top = topVersion.get(r.key) ?? 0
      if (r.version > top && !(r.version === top + 1 && writer !== undefined && killedAfter(writer, r.key))) out.push(`${start} read version ${r.version} of ${r.key}, which was never written`)
      if (writer === undefined) continue
      const seq = sequence.get(writer) ?? []
      let required = 0
      let because = ''
      if (writer === node) {
        for (const w of seq) {
          if (w.at < r.startedAt && w.key === r.key && w.version > required) [required, because] = [w.version, `written on this node at ${Math.round(w.at)}`]
        }
      } else {
        const notices = (placed.get(writer) ?? []).filter(p => p.at < r.startedAt)
        if (notices.length === 0) continue
        const from = notices[0].latest
        const to = Math.max(...notices.map(p => p.earliest))
        for (let q = from; q <= to; q++) {
          const w = seq[q]
          if (w.key === r.key && w.version > required) [required, because] = [w.version, `invalidated by n${writer + 1} at ${Math.round(w.at)}, and this process had heard of n${writer + 1}'s invalidations since`]
        }
        if (required > 0) bound++
      }
      if (r.version < required) out.push(`${start} read version ${r.version} of ${r.key} (began at ${Math.round(r.startedAt)}, answered at ${Math.round(r.at)}), older than version ${required} ${because}`)
    }
  }
  if (reads < b.minReads) out.push(`only ${reads} reads of ${b.cache}, expected at least ${b.minReads}`)
  if (bound < b.minBoundReads) out.push(`only ${bound} reads of ${b.cache} were bound by another node's invalidation, expected at least ${b.minBoundReads}`)
  return out
}

/**
 * Places each notice (a key and when it came) at a write of the same key
 * reported before it, keeping the notices' order: `earliest` from the
 * leftmost such placement, `latest` from the rightmost. A notice that fits
 * nowhere (its write's report was lost with its process) is left out.
 */
function embed (notices: ReadonlyArray<Entry<'cache-change'>>, seq: ReadonlyArray<Entry<'inv-write'>>): Array<{ at: number, earliest: number, latest: number }> {
  const earliest: number[] = []
  let q = 0
  for (const c of notices) {
    let p = q
    while (p < seq.length && !(seq[p].key === c.key && seq[p].at < c.at)) p++
    earliest.push(p < seq.length ? p : -1)
    if (p < seq.length) q = p + 1
  }
  const latest: number[] = new Array(notices.length).fill(-1)
  let limit = seq.length - 1
  for (let i = notices.length - 1; i >= 0; i--) {
    if (earliest[i] < 0) continue
    let p = limit
    while (p >= 0 && !(seq[p].key === notices[i].key && seq[p].at < notices[i].at)) p--
    latest[i] = p
    if (p >= 0) limit = p - 1
  }
  return notices.map((c, i) => ({ at: c.at, earliest: earliest[i], latest: latest[i] })).filter(p => p.earliest >= 0 && p.latest >= 0)
}

/** Adds `v` to the list under `k`. */
function append<K, V> (m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k)
  if (list === undefined) m.set(k, [v])
  else list.push(v)
}
