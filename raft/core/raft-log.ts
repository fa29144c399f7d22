/**
 * The in-memory Raft log: the entries after the latest snapshot, which of
 * them are durable, and the commit and apply positions. Like etcd's
 * raftLog + unstable, but in one array: `stable` marks how far the caller
 * has confirmed persistence.
 */
import type { Entry, SnapshotMeta } from '../types.js'

export class RaftLog {
  /** Index and term of the last entry covered by the snapshot (0/0 when none). */
  snapshotIndex: number
  snapshotTerm: number
  /** entries[i] has index snapshotIndex + 1 + i. */
  private entries: Entry[]
  committed: number
  applied: number
  /** Highest index known to be durable in the caller's storage. */
  stable: number

  constructor (snapshot: SnapshotMeta | null, entries: readonly Entry[], commit: number) {
    this.snapshotIndex = snapshot?.index ?? 0
    this.snapshotTerm = snapshot?.term ?? 0
    entries.forEach((e, i) => {
      if (e.index !== this.snapshotIndex + 1 + i) {
        throw new RangeError(`log entries are not contiguous after the snapshot at ${this.snapshotIndex}: found index ${e.index} at position ${i}`)
      }
    })
    this.entries = [...entries]
    this.stable = this.lastIndex()
    this.committed = Math.max(this.snapshotIndex, Math.min(commit, this.lastIndex()))
    this.applied = this.snapshotIndex
  }

  firstIndex (): number {
    return this.snapshotIndex + 1
  }

  lastIndex (): number {
    return this.snapshotIndex + this.entries.length
  }

  lastTerm (): number {
    return this.term(this.lastIndex()) ?? 0
  }

  /** The term at index i, or undefined when i is compacted away or beyond the end. */
  term (i: number): number | undefined {
    if (i === this.snapshotIndex) return this.snapshotTerm
    if (i < this.snapshotIndex || i > this.lastIndex()) return undefined
    return this.entries[i - this.snapshotIndex - 1].term
  }

  entry (i: number): Entry | undefined {
    if (i <= this.snapshotIndex || i > this.lastIndex()) return undefined
    return this.entries[i - this.snapshotIndex - 1]
  }

  matchTerm (i: number, term: number): boolean {
    return this.term(i) === term
  }

  /** §3.6.1: a candidate's log is at least as up-to-date as ours. */
  isUpToDate (lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm()
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex())
  }

  /** Entries in [lo, hi], at most maxCount of them and about maxBytes (always at least one). */
  slice (lo: number, hi: number, maxCount = Infinity, maxBytes = Infinity): Entry[] {
    if (lo < this.firstIndex()) throw new RangeError(`entry ${lo} is compacted (first index ${this.firstIndex()})`)
    const out: Entry[] = []
    let bytes = 0
    for (let i = lo; i <= Math.min(hi, this.lastIndex()) && out.length < maxCount; i++) {
      const e = this.entries[i - this.snapshotIndex - 1]
      bytes += e.data.byteLength + 24
      if (out.length > 0 && bytes > maxBytes) break
      out.push(e)
    }
    return out
  }

  /** Entries not yet confirmed durable. */
  unstableEntries (): Entry[] {
    return this.entries.slice(this.stable - this.snapshotIndex)
  }

  /**
   * Appends entries from a leader, truncating a conflicting suffix. Entries
   * already present with the same term are kept, so a stale or duplicated
   * Append never truncates entries a later Append added (§3.5). Returns
   * whether a suffix was cut and which entries are new.
   */
  append (entries: readonly Entry[]): { truncated: boolean, appended: Entry[] } {
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]
      if (e.index <= this.snapshotIndex) continue
      const t = this.term(e.index)
      if (t === e.term) continue
      if (t !== undefined) this.truncateFrom(e.index)
      if (e.index !== this.lastIndex() + 1) {
        throw new RangeError(`append leaves a gap: entry ${e.index} after last index ${this.lastIndex()}`)
      }
      const appended = entries.slice(k)
      for (const a of appended) this.entries.push(a)
      return { truncated: t !== undefined, appended }
    }
    return { truncated: false, appended: [] }
  }

  private truncateFrom (index: number): void {
    if (index <= this.committed) {
      // Leader completeness guarantees this never happens; continuing would lose a committed entry.
      throw new Error(`raft safety violation: truncating committed entry ${index} (committed ${this.committed})`)
    }
    this.entries.length = index - this.snapshotIndex - 1
    this.stable = Math.min(this.stable, index - 1)
  }

  commitTo (i: number): boolean {
    const to = Math.min(i, this.lastIndex())
    if (to <= this.committed) return false
    this.committed = to
    return true
  }

  /** Marks entries up to i durable, unless the log changed at i since they were handed out. */
  stableTo (i: number, term: number): void {
    if (this.term(i) === term && i > this.stable) this.stable = i
  }

  /** First index of the run of `term` that contains index i (for conflict hints). */
  firstIndexOfTerm (i: number): number {
    const term = this.term(i)
    let j = i
    while (j - 1 > this.snapshotIndex && this.term(j - 1) === term) j--
    return j
  }

  /** Last index whose term is `term`, or -1. */
  lastIndexOfTerm (term: number): number {
    for (let i = this.lastIndex(); i > this.snapshotIndex; i--) {
      const t = this.term(i) as number
      if (t === term) return i
      if (t < term) return -1
    }
    return this.snapshotTerm === term ? this.snapshotIndex : -1
  }

  /** Drops entries up to and including `index`, which must be applied. */
  compact (index: number): void {
    if (index <= this.snapshotIndex) return
    if (index > this.applied) throw new RangeError(`cannot compact to ${index}: only ${this.applied} applied`)
    const term = this.term(index) as number
    this.entries = this.entries.slice(index - this.snapshotIndex)
    this.snapshotIndex = index
    this.snapshotTerm = term
  }

  /** Replaces the log with a snapshot received from the leader. */
  restore (meta: SnapshotMeta): void {
    this.entries = []
    this.snapshotIndex = meta.index
    this.snapshotTerm = meta.term
    this.committed = meta.index
    this.stable = meta.index
  }
}
