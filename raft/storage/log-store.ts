/**
 * Durable storage for a Raft node's log, hard state and latest snapshot
 * (in the spirit of etcd-io/raft's `Storage` and hashicorp/raft's
 * `LogStore`/`StableStore`), plus an in-memory implementation for tests and
 * simulations. The file-backed implementation is FileLogStore in wal.ts.
 */
import { InvalidArgumentError, StoppedError } from '../errors.js'
import { LogShape } from './log-shape.js'
import { emptyHardState, type Entry, type HardState, type Snapshot } from '../types.js'

/** What a store held durably when it was opened. */
export interface RecoveredState {
  /** The latest hard state saved, or {@link emptyHardState} if none was. */
  hardState: HardState
  /** The latest snapshot saved, or null. */
  snapshot: Snapshot | null
  /** Contiguous entries, starting at (snapshot?.meta.index ?? 0) + 1. */
  entries: Entry[]
}

/**
 * Durable log storage. Calls take effect in the order they are made (each
 * is validated against the log as left by every earlier call, even one
 * still in flight); each promise resolves once that call's data is durable.
 *
 * Rules shared by every implementation:
 * - `open()` first, once; `close()` last. Any call after `close()` (a second
 *   `close()` included) rejects with StoppedError.
 * - Invalid input rejects with InvalidArgumentError and changes nothing.
 * - Entry terms are positive and never decrease along the log; entry data
 *   is at most MAX_ENTRY_DATA_BYTES (wal-codec.ts).
 * - A snapshot must be newer than the stored one.
 */
export interface LogStore {
  /**
   * Opens the store and recovers what was durable.
   * @throws CorruptLogError on damage recovery must not guess about.
   */
  open(): Promise<RecoveredState>
  /**
   * Durably stores entries then the hard state (either may be empty/null).
   * The first entry's index may be <= the last stored index: the stored
   * suffix from that index on is replaced (conflicting suffix truncation).
   * Entries must be contiguous and start after the snapshot index and at
   * most at lastIndex+1, else InvalidArgumentError. Resolves only when
   * durable. Concurrent calls are group-committed: many callers, one fsync.
   */
  save(entries: readonly Entry[], hardState: HardState | null): Promise<void>
  /**
   * Atomically stores a snapshot newer than the stored one. If the stored
   * entry at meta.index has term meta.term, entries after it are kept;
   * otherwise the whole log is discarded (a snapshot received from a
   * leader). Entries <= meta.index are dropped. A snapshot that keeps the
   * log may be written beside it: saves made meanwhile may become durable
   * first (recovery then finds either snapshot with a consistent log). One
   * such snapshot at a time.
   */
  saveSnapshot(snapshot: Snapshot): Promise<void>
  /** Waits for every accepted call to finish, then releases resources. */
  close(): Promise<void>
}

/** Copies an entry, so neither the caller nor a reader can change what is stored. */
function copyEntry (e: Entry): Entry {
  return { index: e.index, term: e.term, type: e.type, data: new Uint8Array(e.data) }
}

/** Copies a snapshot, so neither the caller nor a reader can change what is stored. */
function copySnapshot (s: Snapshot): Snapshot {
  const { index, term, config } = s.meta
  return {
    meta: { index, term, config: { voters: [...config.voters], learners: [...config.learners] } },
    data: new Uint8Array(s.data)
  }
}

function copyHardState (hs: HardState): HardState {
  return { term: hs.term, vote: hs.vote, commit: hs.commit }
}

interface DiskContents {
  hardState: HardState
  snapshot: Snapshot | null
  entries: Entry[]
  shape: LogShape
}

let contentsOf: (disk: MemoryDisk) => DiskContents

/**
 * The "durable medium" of a MemoryLogStore. Its contents are reachable only
 * through a store's `open()`; pass the same disk to a new store to model a
 * process restart.
 */
export class MemoryDisk {
  readonly #contents: DiskContents = { hardState: emptyHardState, snapshot: null, entries: [], shape: new LogShape() }

  static {
    contentsOf = disk => disk.#contents
  }
}

type Phase = 'new' | 'open' | 'closed'

/**
 * A LogStore kept in memory, with the same validation and semantics as
 * FileLogStore. Every call is durable (on its {@link MemoryDisk}) as soon
 * as it is made.
 */
export class MemoryLogStore implements LogStore {
  readonly #disk: DiskContents
  #phase: Phase = 'new'

  constructor (disk: MemoryDisk = new MemoryDisk()) {
    this.#disk = contentsOf(disk)
  }

  async open (): Promise<RecoveredState> {
    if (this.#phase === 'closed') throw new StoppedError('log store')
    if (this.#phase === 'open') throw new InvalidArgumentError('log store is already open')
    this.#phase = 'open'
    const d = this.#disk
    return {
      hardState: copyHardState(d.hardState),
      snapshot: d.snapshot === null ? null : copySnapshot(d.snapshot),
      entries: d.entries.map(copyEntry)
    }
  }

  async save (entries: readonly Entry[], hardState: HardState | null): Promise<void> {
    this.#checkOpen()
    const d = this.#disk
    d.shape.checkSave(entries, hardState)
    d.shape.applySave(entries)
    if (entries.length > 0) {
      const keep = entries[0].index - (d.snapshot?.meta.index ?? 0) - 1
      d.entries.length = keep
      for (const e of entries) d.entries.push(copyEntry(e))
    }
    if (hardState !== null) d.hardState = copyHardState(hardState)
  }

  async saveSnapshot (snapshot: Snapshot): Promise<void> {
    this.#checkOpen()
    const d = this.#disk
    d.shape.checkSnapshot(snapshot)
    const { index, term } = snapshot.meta
    const discard = d.shape.applySnapshot(index, term)
    const drop = index - (d.snapshot?.meta.index ?? 0)
    if (discard) d.entries.length = 0
    else d.entries.splice(0, drop)
    d.snapshot = copySnapshot(snapshot)
  }

  async close (): Promise<void> {
    if (this.#phase === 'closed') throw new StoppedError('log store')
    this.#phase = 'closed'
  }

  #checkOpen (): void {
    if (this.#phase === 'closed') throw new StoppedError('log store')
    if (this.#phase === 'new') throw new InvalidArgumentError('log store is not open: call open() first')
  }
}
