/**
 * Rebuilds the log from WAL segments, checking as it goes that they tell a
 * story the writer could have produced. Pure: no files, so every rule here
 * is easy to test.
 *
 * What the writer produces (see wal.ts):
 * - Every segment starts with a segmentStart record (its number and the
 *   log's last index/term at that moment), then copies of the latest
 *   snapshot marker and hard state. A sealed segment that lost records at its
 *   end is caught when the next segment's start does not match.
 * - Entry records: an entry at index i replaces every entry >= i (conflicting
 *   suffix truncation) and must not leave a gap after the last one.
 * - Hard state records: the latest wins.
 * - Snapshot markers, written after the snapshot file is durable: the log
 *   prefix up to `index` is covered by a snapshot, and, when `discardLog` is
 *   set, every entry before the marker is obsolete.
 *
 * Segments wholly covered by the snapshot may have been deleted, so replay
 * can start in the middle of the history; the entries before the first one
 * seen are then accounted for by the snapshot, which {@link WalReplay.finish}
 * checks.
 */
import { assertNever } from '../assert-never.js'
import { CorruptLogError } from '../errors.js'
import { emptyHardState, type Entry, type HardState, type Snapshot } from '../types.js'
import type { DecodedRecord, WalRecord } from './wal-codec.js'

interface Place {
  readonly seq: number
  readonly file: string
  readonly offset: number
}

interface Marker extends Place {
  readonly index: number
  readonly term: number
}

/** A log position: an index and the term of the entry (or snapshot) there. */
export interface Position {
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
  /** Where the log ends in the records as written (before finish's own decisions): the next segmentStart must say this. */
  readonly streamEnd: Position
}

/** Feeds on segments in order, then {@link finish}es against the snapshot. */
export class WalReplay {
  #entries: Entry[] = []
  /** Where #entries[0] was read, for errors about the start of the log. */
  #start: Place | null = null
  /** Last entry, or the snapshot a discarding marker moved the end to; null until known. */
  #last: Position | null = null
  #hardState: HardState | null = null
  #hardStateSeq: number | null = null
  #marker: Marker | null = null
  #obsoleteBeforeSeq = 0
  /** The segment replayed before the current one: file and length. */
  #previous: { readonly file: string, readonly size: number } | null = null

  /**
   * Replays one segment's records (`size` bytes of them). Every segment must
   * open with its segmentStart record, except an empty newest segment (a
   * crash right after it was created, or a torn tail cut to nothing).
   */
  segment (seq: number, file: string, size: number, records: readonly DecodedRecord[], newest: boolean): void {
    const [head] = records
    if (head === undefined) {
      if (!newest || size > 0) corrupt({ file, offset: 0 }, 'segment holds no records, not even its segment start')
    } else if (head.record.kind !== 'segmentStart') {
      corrupt({ file, offset: 0 }, `segment starts with a ${head.record.kind} record instead of its segment start`)
    }
    for (const { record, offset } of records) this.#record(record, { seq, file, offset })
    this.#previous = { file, size }
  }

  #record (record: WalRecord, place: Place): void {
    switch (record.kind) {
      case 'segmentStart':
        this.#segmentStart(record, place)
        return
      case 'entry':
        this.#entry(record.entry, place)
        return
      case 'hardState':
        this.#hardState = record.hardState
        this.#hardStateSeq = place.seq
        return
      case 'snapshot':
        this.#snapshotMarker({ ...place, index: record.index, term: record.term }, record.discardLog)
        return
      default:
        assertNever(record, 'WAL record')
    }
  }

  #segmentStart (start: Extract<WalRecord, { kind: 'segmentStart' }>, place: Place): void {
    if (place.offset !== 0) corrupt(place, 'segment start record in the middle of a segment')
    if (start.seq !== place.seq) corrupt(place, `segment ${place.seq} says it is segment ${start.seq}`)
    const last = this.#last
    if (last === null) {
      this.#last = { index: start.lastIndex, term: start.lastTerm }
      return
    }
    if (last.index !== start.lastIndex || last.term !== start.lastTerm) {
      const previous = this.#previous
      corrupt(previous === null ? place : { file: previous.file, offset: previous.size }, `the log ends at ${last.index}/${last.term} here, but the next segment was started ` +
        `after ${start.lastIndex}/${start.lastTerm}: the end of this segment is missing`)
    }
  }

  #entry (e: Entry, place: Place): void {
    const floor = this.#marker?.index ?? 0
    if (e.index <= floor) corrupt(place, `entry ${e.index} is at or before the snapshot index ${floor} marked earlier`)
    const last = this.#last
    if (last !== null && e.index > last.index + 1) {
      corrupt(place, `entry ${e.index} follows entry ${last.index}: entries ${last.index + 1}..${e.index - 1} are missing`)
    }
    const entries = this.#entries
    const first = entries[0]?.index
    if (first === undefined || e.index < first) {
      // The first entry replayed, or a truncation below all of them: the
      // entries it keeps were in segments since deleted, which the snapshot
      // must cover (checked in finish).
      this.#entries = [e]
      this.#start = place
    } else {
      entries.length = e.index - first
      const prev = entries.at(-1)
      if (prev !== undefined && prev.term > e.term) {
        corrupt(place, `entry ${e.index} has term ${e.term}, lower than term ${prev.term} of the entry before it`)
      }
      entries.push(e)
    }
    this.#last = { index: e.index, term: e.term }
  }

  #snapshotMarker (m: Marker, discardLog: boolean): void {
    const prev = this.#marker
    if (prev !== null && (m.index < prev.index || (m.index === prev.index && m.term !== prev.term))) {
      corrupt(m, `snapshot marker ${m.index}/${m.term} after marker ${prev.index}/${prev.term}: markers never go back`)
    }
    if (discardLog) {
      this.#entries = []
      this.#start = null
      // The log now ends at the snapshot: the next entry must be index + 1.
      this.#last = { index: m.index, term: m.term }
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
      // as saveSnapshot found it: decide keep or discard as it did. Segments
      // are only deleted after the marker is durable, so the log here still
      // reaches back past the previous snapshot; if it starts after this
      // snapshot's index instead, entries were lost and deciding would guess.
      const first = this.#entries[0]
      if (first !== undefined && first.index > snapIndex) {
        corrupt(this.#start ?? { file: firstSegment, offset: 0 },
          `snapshot at ${snapIndex} has no WAL marker, and the log starts after it, at ${first.index}: earlier segments are missing`)
      }
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
      obsoleteBeforeSeq: this.#obsoleteBeforeSeq,
      streamEnd: this.#last ?? { index: 0, term: 0 }
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
