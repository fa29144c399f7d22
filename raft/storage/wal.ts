/**
 * FileLogStore: the LogStore on disk, as a segmented write-ahead log plus
 * snapshot files in one data directory.
 *
 * Files:
 * - `wal-<seq>.log`: WAL segments (wal-segment.ts, record format in
 *   wal-codec.ts). Entries, hard states and snapshot markers go through the
 *   same log, so one save costs one fsync. A new segment is started once the
 *   active one reaches `segmentBytes`; it begins with a segmentStart record
 *   (where the log ended, so a sealed segment missing its end is detected)
 *   and copies of the latest snapshot marker and hard state, so the active
 *   segment always holds both and older segments can be deleted without
 *   losing either.
 * - `snap-<index>.bin`: the latest snapshot (snapshot-file.ts).
 *
 * Writes are group-committed: calls made while an fsync is in flight are
 * written together and share the next fsync. Any I/O error leaves the store
 * failed (what reached the disk is unknown, and a failed fsync cannot be
 * retried safely): that call and every later one reject.
 *
 * Recovery (open) reads every segment and snapshot before changing any file,
 * so a CorruptLogError leaves the directory exactly as found. Torn versus
 * corrupt: only the newest segment may end in a torn write, which is
 * truncated (see wal-codec.ts for how a tear is told from damage). Anything
 * else (damage before the tail or in a sealed segment, a missing segment, a
 * gap in the entries, a marker without its snapshot, a damaged snapshot
 * file) is a CorruptLogError naming the file and byte offset.
 */
import { join } from 'node:path'
import { CorruptLogError, InvalidArgumentError, StoppedError, StorageFailedError } from '../errors.js'
import { LogShape } from './log-shape.js'
import { silentLogger, type Logger } from '../logger.js'
import type { LogStore, RecoveredState } from './log-store.js'
import type { Entry, HardState, Snapshot } from '../types.js'
import { encodeRecord } from './wal-codec.js'
import { WalReplay, type Position } from './wal-replay.js'
import { readSegment, segmentFileName, SegmentWriter } from './wal-segment.js'
import { encodeSnapshotFile, parseSnapshotFileName, readSnapshotFile, snapshotFileName, writeSnapshotFile } from './snapshot-file.js'
import { scanDataDir } from './data-dir.js'
import { nodeFileSystem, type FileSystem } from './file-system.js'

/** Options for {@link FileLogStore}. */
export interface FileLogStoreOptions {
  /** Data directory, created if missing. One store per directory at a time. */
  readonly dir: string
  /** Start a new segment once the active one reaches this many bytes. Default 64 MiB. */
  readonly segmentBytes?: number
  /** Told when recovery changes files (a truncated torn tail). Silent by default. */
  readonly logger?: Pick<Logger, 'warn'>
  /**
   * Where a save waits for its fdatasync. `'threadpool'` (default) keeps the
   * event loop free meanwhile, which an application embedding the node needs.
   * `'inline'` blocks the event loop for the flush (0.2–2 ms here) but saves
   * the hand-off to a libuv thread and back, two context switches on the
   * commit path: for a process that does nothing but run the node.
   */
  readonly fsync?: 'threadpool' | 'inline'
  /** The file system to use; node:fs by default (a simulation passes a simulated disk). */
  readonly fs?: FileSystem
}

/** Default segment size: large enough that rolls are rare, small enough to delete promptly after a snapshot. */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024

interface Segment {
  readonly seq: number
  readonly path: string
  /** Highest entry index ever written to it: the segment is covered once a snapshot reaches this. */
  maxIndex: number
}

/** One encoded record waiting to be written. */
interface Pending {
  readonly bytes: Buffer
  /** Index of the entry it holds, 0 for other records. */
  readonly entryIndex: number
  /** Where the log ends once this record is applied, if it moves the end (an entry, a discarding marker). */
  readonly end?: Position
  /** What it makes the head of later segments: itself for a hard state, a marker copy for a snapshot. */
  readonly head?: { readonly slot: 'hardState' | 'marker', readonly bytes: Buffer }
}

interface Waiter {
  resolve(): void
  reject(err: unknown): void
}

type Op =
  | { readonly kind: 'save', readonly records: Pending[], readonly waiter: Waiter }
  | { readonly kind: 'snapshot', readonly index: number, readonly discardLog: boolean, readonly file: Buffer | null, readonly marker: Pending, readonly waiter: Waiter }

type Phase = 'new' | 'opening' | 'open' | 'closed'

function entryRecord (entry: Entry): Pending {
  return { bytes: encodeRecord({ kind: 'entry', entry }), entryIndex: entry.index, end: { index: entry.index, term: entry.term } }
}

function markerRecord (index: number, term: number, discardLog: boolean): Pending {
  return {
    bytes: encodeRecord({ kind: 'snapshot', index, term, discardLog }),
    entryIndex: 0,
    ...(discardLog ? { end: { index, term } } : {}),
    head: { slot: 'marker', bytes: encodeRecord({ kind: 'snapshot', index, term, discardLog: false }) }
  }
}

function hardStateRecord (hardState: HardState): Pending {
  const bytes = encodeRecord({ kind: 'hardState', hardState })
  return { bytes, entryIndex: 0, head: { slot: 'hardState', bytes } }
}

/** A durable {@link LogStore} in a data directory; see the module comment for the format and rules. */
export class FileLogStore implements LogStore {
  readonly #dir: string
  readonly #fs: FileSystem
  readonly #segmentBytes: number
  readonly #logger: Pick<Logger, 'warn'>
  #phase: Phase = 'new'
  /** The log as every accepted call leaves it, including calls not yet durable; used to validate new calls. */
  #shape = new LogShape()
  /** Oldest first; the last one is the active segment. */
  #segments: Segment[] = []
  #writer: SegmentWriter | null = null
  /** Whether the active segment holds anything beyond its head copies (a roll before that would loop). */
  #activeHasRecords = false
  readonly #heads: { hardState: Buffer | null, marker: Buffer | null } = { hardState: null, marker: null }
  /** Where the log ends in the records handed to the active segment so far (its next segmentStart). */
  #written: Position = { index: 0, term: 0 }
  readonly #queue: Op[] = []
  readonly #inlineFsync: boolean
  #syncs = 0
  #draining: Promise<void> | null = null
  #failure: Error | null = null
  /** A snapshot file being written beside the log (see saveSnapshot). */
  #sideWrite: Promise<void> | null = null
  #snapshotCalls = 0

  constructor (options: FileLogStoreOptions) {
    if (typeof options?.dir !== 'string' || options.dir === '') throw new InvalidArgumentError('options.dir must be a directory path')
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 1) {
      throw new InvalidArgumentError(`options.segmentBytes must be a positive integer, got ${String(options.segmentBytes)}`)
    }
    this.#dir = options.dir
    this.#fs = options.fs ?? nodeFileSystem
    this.#segmentBytes = segmentBytes
    this.#logger = options.logger ?? silentLogger
    if (options.fsync !== undefined && options.fsync !== 'threadpool' && options.fsync !== 'inline') {
      throw new InvalidArgumentError(`options.fsync must be 'threadpool' or 'inline', got ${String(options.fsync)}`)
    }
    this.#inlineFsync = options.fsync === 'inline'
  }

  async open (): Promise<RecoveredState> {
    if (this.#phase === 'closed') throw new StoppedError('log store')
    if (this.#phase !== 'new') throw new InvalidArgumentError('log store is already open')
    this.#phase = 'opening'
    let state: RecoveredState
    try {
      state = await this.#recover()
    } catch (err) {
      await this.#writer?.close()
      this.#writer = null
      this.#segments = []
      this.#heads.hardState = this.#heads.marker = null
      if (!this.#closedMeanwhile()) this.#phase = 'new'
      throw err
    }
    if (this.#closedMeanwhile()) {
      await this.#writer?.close()
      this.#writer = null
      throw new StoppedError('log store')
    }
    this.#phase = 'open'
    return state
  }

  /** Flushes of the log so far: saves made while one is pending share the next. */
  get syncs (): number {
    return this.#syncs
  }

  async save (entries: readonly Entry[], hardState: HardState | null): Promise<void> {
    this.#checkUsable()
    this.#shape.checkSave(entries, hardState)
    const records: Pending[] = entries.map(entryRecord)
    if (hardState !== null) records.push(hardStateRecord(hardState))
    this.#shape.applySave(entries)
    return await new Promise((resolve, reject) => this.#enqueue({ kind: 'save', records, waiter: { resolve, reject } }))
  }

  async saveSnapshot (snapshot: Snapshot): Promise<void> {
    this.#checkUsable()
    this.#shape.checkSnapshot(snapshot)
    const { index, term } = snapshot.meta
    const discardLog = this.#shape.applySnapshot(index, term)
    const marker = markerRecord(index, term, discardLog)
    const call = ++this.#snapshotCalls
    let file: Buffer | null = encodeSnapshotFile(snapshot)
    if (!discardLog && this.#sideWrite === null) {
      // A snapshot that keeps the log (this node's own compaction, mostly) is
      // written beside the log, so saves made meanwhile need not wait for it
      // (a large one takes seconds). Its marker and the compaction follow the
      // file; if a newer snapshot was saved meanwhile, that one replaces it
      // and this marker is not written at all.
      const written = writeSnapshotFile(this.#fs, this.#dir, index, file).then(() => {}, (err: unknown) => { this.#fail(err) })
      this.#sideWrite = written
      await written
      this.#sideWrite = null
      this.#checkUsable()
      if (call !== this.#snapshotCalls) return
      file = null
    }
    return await new Promise((resolve, reject) => this.#enqueue({ kind: 'snapshot', index, discardLog, file, marker, waiter: { resolve, reject } }))
  }

  async close (): Promise<void> {
    if (this.#phase === 'closed') throw new StoppedError('log store')
    const wasOpen = this.#phase === 'open'
    this.#phase = 'closed'
    if (!wasOpen) return
    await this.#sideWrite
    await this.#draining
    await this.#writer?.close()
    this.#writer = null
  }

  /** close() may run while open() awaits; TypeScript's narrowing of #phase cannot see that. */
  #closedMeanwhile (): boolean {
    return this.#phase === 'closed'
  }

  #checkUsable (): void {
    if (this.#phase === 'closed') throw new StoppedError('log store')
    if (this.#phase !== 'open') throw new InvalidArgumentError('log store is not open: call open() first')
    if (this.#failure !== null) throw this.#failure
  }

  #enqueue (op: Op): void {
    this.#queue.push(op)
    this.#draining ??= this.#drain()
  }

  /** Runs queued operations in order; consecutive saves form one group with one fsync. */
  async #drain (): Promise<void> {
    // Let callers in the same tick join the first group instead of waiting
    // for the next. An inline fsync blocks the event loop, so it also waits
    // for the I/O callbacks already due (setImmediate runs after them): they
    // may bring more writes for the same flush.
    if (this.#inlineFsync) await new Promise(resolve => setImmediate(resolve))
    else await Promise.resolve()
    while (this.#queue.length > 0) {
      const group = this.#takeGroup()
      if (this.#failure !== null) {
        for (const op of group) op.waiter.reject(this.#failure)
        continue
      }
      try {
        const head = group[0]
        if (head.kind === 'snapshot') await this.#installSnapshot(head)
        else await this.#writeDurably(group.flatMap(op => op.kind === 'save' ? op.records : []))
        for (const op of group) op.waiter.resolve()
      } catch (err) {
        this.#fail(err)
        for (const op of group) op.waiter.reject(err)
      }
    }
    // No await between the empty check and this, so no op can be stranded.
    this.#draining = null
  }

  #fail (err: unknown): void {
    const cause = err instanceof Error ? err : new Error(String(err))
    this.#failure ??= new StorageFailedError(`log store at ${this.#dir} failed and accepts no more writes: ${cause.message}`, { cause })
  }

  /** One snapshot op, or every save before the next snapshot op. */
  #takeGroup (): Op[] {
    if (this.#queue[0].kind === 'snapshot') return this.#queue.splice(0, 1)
    const n = this.#queue.findIndex(op => op.kind === 'snapshot')
    return this.#queue.splice(0, n === -1 ? this.#queue.length : n)
  }

  async #writeDurably (records: Pending[]): Promise<void> {
    this.#syncs++
    await this.#append(records)
    await this.#active().sync(this.#inlineFsync)
  }

  /**
   * Appends records, rolling to a new segment whenever the active one is full.
   * Not durable until the active segment is synced.
   */
  async #append (records: Pending[]): Promise<void> {
    let chunk: Buffer[] = []
    let chunkBytes = 0
    const add = (bytes: Buffer): void => {
      chunk.push(bytes)
      chunkBytes += bytes.length
    }
    for (const record of records) {
      if (this.#activeHasRecords && this.#active().size + chunkBytes >= this.#segmentBytes) {
        await this.#active().append(Buffer.concat(chunk, chunkBytes))
        chunk = []
        chunkBytes = 0
        await this.#roll()
        for (const head of this.#segmentHeads()) add(head)
      }
      add(record.bytes)
      this.#activeHasRecords = true
      if (record.head !== undefined) this.#heads[record.head.slot] = record.head.bytes
      if (record.end !== undefined) this.#written = record.end
      const segment = this.#segments[this.#segments.length - 1]
      segment.maxIndex = Math.max(segment.maxIndex, record.entryIndex)
    }
    if (chunkBytes > 0) await this.#active().append(Buffer.concat(chunk, chunkBytes))
  }

  /** Seals the active segment (fsync) before its successor exists, so only the newest can be torn. */
  async #roll (): Promise<void> {
    const old = this.#active()
    await old.sync()
    await old.close()
    this.#writer = await SegmentWriter.create(this.#fs, this.#dir, old.seq + 1)
    this.#segments.push({ seq: this.#writer.seq, path: this.#writer.path, maxIndex: 0 })
    this.#activeHasRecords = false
  }

  /** What the active segment must start with (see the module comment). */
  #segmentHeads (): Buffer[] {
    const { index, term } = this.#written
    const start = encodeRecord({ kind: 'segmentStart', seq: this.#active().seq, lastIndex: index, lastTerm: term })
    return [start, ...[this.#heads.marker, this.#heads.hardState].filter(head => head !== null)]
  }

  #active (): SegmentWriter {
    if (this.#writer === null) throw new StoppedError('log store')
    return this.#writer
  }

  /**
   * Snapshot file first, then its marker: a marker thus always has its file,
   * and a file without a marker is finished by recovery (see WalReplay.finish).
   */
  async #installSnapshot (op: Extract<Op, { kind: 'snapshot' }>): Promise<void> {
    if (op.file !== null) await writeSnapshotFile(this.#fs, this.#dir, op.index, op.file)
    await this.#writeDurably([op.marker])
    await this.#compact(op.index, op.discardLog ? this.#active().seq : 0)
  }

  /**
   * Deletes the segments nothing needs any more (all entries covered by the
   * snapshot at `snapIndex`, or made obsolete by a discarding marker), and
   * snapshot files older than it. Segments go oldest first with a directory
   * fsync after each, so a crash leaves a shorter prefix deleted, never a
   * hole in the sequence (which recovery would rightly call corruption).
   */
  async #compact (snapIndex: number, obsoleteBeforeSeq: number): Promise<void> {
    while (this.#segments.length > 1) {
      const oldest = this.#segments[0]
      if (oldest.seq >= obsoleteBeforeSeq && oldest.maxIndex > snapIndex) break
      await this.#fs.unlink(oldest.path)
      await this.#fs.syncDir(this.#dir)
      this.#segments.shift()
    }
    for (const name of await this.#fs.readdir(this.#dir)) {
      const index = parseSnapshotFileName(name)
      if (index !== null && index < snapIndex) await this.#fs.unlink(join(this.#dir, name))
    }
  }

  async #recover (): Promise<RecoveredState> {
    const dir = this.#dir
    const fs = this.#fs
    const { segments: seqs, newestSnapshot: snapIndex, tempFiles } = await scanDataDir(fs, dir)
    const snapshot = snapIndex === 0 ? null : await readSnapshotFile(fs, join(dir, snapshotFileName(snapIndex)), snapIndex)
    if (seqs.length === 0 && snapshot !== null) {
      throw new CorruptLogError(dir, 0, `snapshot ${snapshotFileName(snapIndex)} exists but there is no WAL segment: the hard state and log are missing`)
    }

    const replay = new WalReplay()
    let torn: { offset: number, reason: string } | null = null
    for (const [i, seq] of seqs.entries()) {
      const path = join(dir, segmentFileName(seq))
      const newest = i === seqs.length - 1
      const { records, size, tornAt } = await readSegment(fs, path, newest)
      replay.segment(seq, path, tornAt?.offset ?? size, records, newest)
      const maxIndex = records.reduce((max, { record }) => record.kind === 'entry' ? Math.max(max, record.entry.index) : max, 0)
      this.#segments.push({ seq, path, maxIndex })
      torn = tornAt
    }
    const result = replay.finish(snapshot, join(dir, segmentFileName(seqs[0] ?? 1)))

    // Everything is verified; from here on recovery may change files.
    for (const file of tempFiles) await fs.unlink(file)
    const active = this.#segments.at(-1)
    if (active === undefined) {
      this.#writer = await SegmentWriter.create(fs, dir, 1)
      this.#segments.push({ seq: 1, path: this.#writer.path, maxIndex: 0 })
    } else {
      if (torn !== null) this.#logger.warn({ file: active.path, offset: torn.offset, reason: torn.reason }, 'truncating a torn write at the end of the raft log')
      this.#writer = await SegmentWriter.resume(fs, dir, active.seq, torn?.offset ?? null)
    }
    const activeSeq = this.#writer.seq
    this.#activeHasRecords = this.#writer.size > 0
    this.#written = result.streamEnd
    const snapTerm = snapshot?.meta.term ?? 0
    this.#shape = new LogShape(snapIndex, snapTerm, result.entries)

    // Restore the invariant compaction relies on (the active segment starts
    // properly and holds the latest marker and hard state), and write the
    // marker recovery had to infer.
    const marker = snapshot === null ? null : markerRecord(snapIndex, snapTerm, false)
    const hardState = result.hardStateSeq === null ? null : hardStateRecord(result.hardState)
    // A missing marker is appended below and becomes the head copy then; until
    // it is written, no marker for this snapshot exists to copy.
    this.#heads.marker = result.missingMarker === null ? marker?.head?.bytes ?? null : null
    this.#heads.hardState = hardState?.bytes ?? null
    const repairs: Pending[] = []
    if (this.#writer.size === 0) {
      repairs.push(...this.#segmentHeads().map(bytes => ({ bytes, entryIndex: 0 })))
    } else {
      if (marker !== null && result.markerSeq !== activeSeq && result.missingMarker === null) repairs.push(marker)
      if (hardState !== null && result.hardStateSeq !== activeSeq) repairs.push(hardState)
    }
    if (result.missingMarker !== null) repairs.push(markerRecord(snapIndex, snapTerm, result.missingMarker.discardLog))
    if (repairs.length > 0) await this.#writeDurably(repairs)
    const obsoleteBeforeSeq = result.missingMarker?.discardLog === true ? activeSeq : result.obsoleteBeforeSeq
    await this.#compact(snapIndex, obsoleteBeforeSeq)

    return { hardState: result.hardState, snapshot, entries: result.entries }
  }
}
