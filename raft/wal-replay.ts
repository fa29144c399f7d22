/**
 * Rebuilds the log from WAL records, checking as it goes that they tell a
 * story the writer could have produced. Pure: no files, so every rule here
 * is easy to test.
 *
 * What the writer produces (see wal.ts):
 * - Entry records: an entry at index i replaces every entry >= i (conflicting
 *   suffix truncation) and must not leave a gap after the last one.
 * - Hard state records: the latest wins. Every segment after the first starts
 *   with a copy of the current hard state, so deleting old segments never
 *   loses it.
 * - Snapshot markers, written after the snapshot file is durable: the log
 *   prefix up to `index` is covered by a snapshot, and, when `discardLog` is
 *   set, every entry before the marker is obsolete. Every new segment also
 *   starts with a non-discarding copy of the latest marker.
 *
 * Segments wholly covered by the snapshot may have been deleted, so replay
 * can start in the middle of the history; the entries before the first one
 * seen are then accounted for by the snapshot, which {@link WalReplay.finish}
 * checks.
 */
import { CorruptLogError } from './errors.js'
import { emptyHardState, type Entry, type HardState, type Snapshot } from './types.js'
import type { WalRecord } from './wal-codec.js'

interface Place {
  readonly seq: number
  readonly file: string
  readonly offset: number
}

interface Marker extends Place {
  readonly index: number
  readonly term: number
}

/** The log as recovered, plus what the store must repair before accepting writes. */
export interface ReplayResult {
  readonly hardState: HardState
  /** Entries after the snapshot, contiguous. */
  readonly entries: Entry[]
  /** Segment holding the latest hard state record, or null if there is none. */
  readonly hardStateSeq: number | null
  /** Segment holding a marker for the loaded snapshot, or null if there is none. */
  readonly markerSeq: number | null
  /**
   * Set when the snapshot file is newer than every marker: the process
   * stopped between writing the file and its marker. Replay has applied the
   * snapshot rule itself; the store must now write the marker, with this
   * `discardLog`, before anything else.
   */
  readonly missingMarker: { readonly discardLog: boolean } | null
  /** Segments numbered below this hold only entries a discarding marker made obsolete. */
  readonly obsoleteBeforeSeq: number
}

/** Feeds on records in WAL order, then {@link finish}es against the snapshot. */
export class WalReplay {
  #entries: Entry[] = []
  /** Where #entries[0] was read, for errors about the start of the log. */
  #start: Place | null = null
  #hardState: HardState | null = null
  #hardStateSeq: number | null = null
  #marker: Marker | null = null
  /** After a discarding marker at i, the next entry must be exactly i + 1. */
  #expectNext: number | null = null
  #obsoleteBeforeSeq = 0

  /** Applies one record read from segment `seq` (file `file`) at `offset`. */
  record (record: WalRecord, seq: number, file: string, offset: number): void {
    const place = { seq, file, offset }
    switch (record.kind) {
      case 'entry':
        this.#entry(record.entry, place)
        return
      case 'hardState':
        this.#hardState = record.hardState
        this.#hardStateSeq = seq
        return
      case 'snapshot':
        this.#snapshotMarker({ ...place, index: record.index, term: record.term }, record.discardLog)
    }
  }

  #entry (e: Entry, place: Place): void {
    const floor = this.#marker?.index ?? 0
    if (e.index <= floor) corrupt(place, `entry ${e.index} is at or before the snapshot index ${floor} marked earlier`)
    const entries = this.#entries
    if (entries.length === 0) {
      if (this.#expectNext !== null && e.index !== this.#expectNext) {
        corrupt(place, `entry ${e.index} follows a log discarded for a snapshot at ${this.#expectNext - 1}`)
      }
      this.#restart(e, place)
      return
    }
    const first = entries[0].index
    const last = first + entries.length - 1
    if (e.index > last + 1) corrupt(place, `entry ${e.index} follows entry ${last}: entries ${last + 1}..${e.index - 1} are missing`)
    if (e.index < first) {
      // A truncation below everything replayed so far: the entries it keeps
      // were in segments since deleted, covered by the snapshot (checked in finish).
      this.#restart(e, place)
      return
    }
    entries.length = e.index - first
    const prev = entries.at(-1)
    if (prev !== undefined && prev.term > e.term) {
      corrupt(place, `entry ${e.index} has term ${e.term}, lower than term ${prev.term} of the entry before it`)
    }
    entries.push(e)
  }

  #restart (e: Entry, place: Place): void {
    this.#entries = [e]
    this.#start = place
  }

  #snapshotMarker (m: Marker, discardLog: boolean): void {
    const prev = this.#marker
    if (prev !== null && (m.index < prev.index || (m.index === prev.index && m.term !== prev.term))) {
      corrupt(m, `snapshot marker ${m.index}/${m.term} after marker ${prev.index}/${prev.term}: markers never go back`)
    }
    if (discardLog) {
      this.#entries = []
      this.#start = null
      this.#expectNext = m.index + 1
      this.#obsoleteBeforeSeq = m.seq
    }
    this.#marker = m
  }

  /**
   * Checks the replayed log against the newest snapshot file and returns the
   * recovered state.
   * @param firstSegment path of the oldest segment, named in errors about a missing start.
   * @throws CorruptLogError when the two disagree or entries are missing.
   */
  finish (snapshot: Snapshot | null, firstSegment: string): ReplayResult {
    const marker = this.#marker
    const snapIndex = snapshot?.meta.index ?? 0
    if (marker !== null) {
      if (snapshot === null) corrupt(marker, `snapshot marker for index ${marker.index} but no snapshot file`)
      if (marker.index > snapIndex) {
        corrupt(marker, `snapshot marker for index ${marker.index} but the newest snapshot file is at ${snapIndex}`)
      }
      if (marker.index === snapIndex && marker.term !== snapshot.meta.term) {
        corrupt(marker, `snapshot marker has term ${marker.term} but the snapshot file has term ${snapshot.meta.term}`)
      }
    }
    const markerSeen = marker !== null && marker.index === snapIndex
    let missingMarker: ReplayResult['missingMarker'] = null
    if (snapshot !== null && !markerSeen) {
      // Nothing was written after the snapshot file, so the log is exactly
      // as saveSnapshot found it: decide keep or discard as it did.
      const discardLog = this.#termAt(snapIndex) !== snapshot.meta.term
      if (discardLog) this.#entries = []
      missingMarker = { discardLog }
    }
    const entries = this.#entriesAfter(snapIndex)
    if (entries.length > 0 && entries[0].index !== snapIndex + 1) {
      const where = this.#start ?? { file: firstSegment, offset: 0 }
      corrupt(where, snapshot === null
        ? `the log starts at index ${entries[0].index} with no snapshot before it`
        : `the log resumes at index ${entries[0].index} but the snapshot ends at ${snapIndex}`)
    }
    return {
      hardState: this.#hardState ?? emptyHardState,
      entries,
      hardStateSeq: this.#hardStateSeq,
      markerSeq: markerSeen ? marker.seq : null,
      missingMarker,
      obsoleteBeforeSeq: this.#obsoleteBeforeSeq
    }
  }

  #termAt (index: number): number | undefined {
    const first = this.#entries[0]?.index ?? 0
    return this.#entries[index - first]?.term
  }

  #entriesAfter (index: number): Entry[] {
    const first = this.#entries[0]?.index
    if (first === undefined || first > index) return this.#entries
    return this.#entries.slice(index - first + 1)
  }
}

function corrupt (where: { readonly file: string, readonly offset: number }, reason: string): never {
  throw new CorruptLogError(where.file, where.offset, reason)
}
