/**
 * The shape of a stored log, the snapshot position and the term of every
 * entry after it, and the rules every LogStore applies to it: which saves
 * and snapshots are valid, how a save truncates a conflicting suffix, and
 * whether a snapshot keeps or discards the log. MemoryLogStore and
 * FileLogStore both validate through this class, so they accept and reject
 * exactly the same calls.
 */
import { InvalidArgumentError } from '../errors.js'
import type { Entry, HardState, Snapshot } from '../types.js'
import { MAX_ENTRY_DATA_BYTES, MAX_VOTE_BYTES } from './wal-codec.js'
import { utf8 } from './binary.js'

function isCount (value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

/** Snapshot position plus the terms of entries snapshotIndex+1 .. lastIndex. */
export class LogShape {
  #snapshotIndex: number
  #snapshotTerm: number
  /** terms[i] is the term of entry snapshotIndex + 1 + i. */
  readonly #terms: number[]

  constructor (snapshotIndex = 0, snapshotTerm = 0, entries: readonly Entry[] = []) {
    this.#snapshotIndex = snapshotIndex
    this.#snapshotTerm = snapshotTerm
    this.#terms = entries.map(e => e.term)
  }

  get snapshotIndex (): number {
    return this.#snapshotIndex
  }

  get lastIndex (): number {
    return this.#snapshotIndex + this.#terms.length
  }

  /** Term of the entry at `index`, the snapshot term at the snapshot index, else undefined. */
  termAt (index: number): number | undefined {
    if (index === this.#snapshotIndex) return this.#snapshotTerm
    if (index < this.#snapshotIndex || index > this.lastIndex) return undefined
    return this.#terms[index - this.#snapshotIndex - 1]
  }

  /**
   * Throws InvalidArgumentError unless `entries` can be appended: well-formed,
   * contiguous, starting after the snapshot and at most one past the last
   * index, with terms that never decrease (Raft's log terms are monotonic, so
   * a decrease is a caller bug that would otherwise be made durable).
   */
  checkSave (entries: readonly Entry[], hardState: HardState | null): void {
    if (!Array.isArray(entries)) throw new InvalidArgumentError('entries must be an array')
    if (hardState !== null) checkHardState(hardState)
    if (entries.length === 0) return
    entries.forEach(checkEntry)
    const first = entries[0].index
    if (first <= this.#snapshotIndex) {
      throw new InvalidArgumentError(`entry ${first} is at or before the snapshot index ${this.#snapshotIndex}; compacted entries cannot be rewritten`)
    }
    if (first > this.lastIndex + 1) {
      throw new InvalidArgumentError(`entry ${first} would leave a gap after the last index ${this.lastIndex}`)
    }
    let prevTerm = this.termAt(first - 1) as number
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]
      if (e.index !== first + i) {
        throw new InvalidArgumentError(`entries are not contiguous: expected index ${first + i}, got ${e.index}`)
      }
      if (e.term < prevTerm) {
        throw new InvalidArgumentError(`entry ${e.index} has term ${e.term}, lower than the term ${prevTerm} before it`)
      }
      prevTerm = e.term
    }
  }

  /** Applies a save that passed {@link checkSave}: drops the suffix from the first index on, appends. */
  applySave (entries: readonly Entry[]): void {
    if (entries.length === 0) return
    this.#terms.length = entries[0].index - this.#snapshotIndex - 1
    for (const e of entries) this.#terms.push(e.term)
  }

  /** Throws InvalidArgumentError unless `snapshot` is well-formed and newer than the stored one. */
  checkSnapshot (snapshot: Snapshot): void {
    if (typeof snapshot !== 'object' || snapshot === null) throw new InvalidArgumentError('snapshot must be an object')
    const { meta, data } = snapshot
    if (typeof meta !== 'object' || meta === null) throw new InvalidArgumentError('snapshot.meta must be an object')
    if (!isCount(meta.index) || meta.index < 1) throw new InvalidArgumentError(`snapshot index must be a positive safe integer, got ${String(meta.index)}`)
    if (!isCount(meta.term) || meta.term < 1) throw new InvalidArgumentError(`snapshot term must be a positive safe integer, got ${String(meta.term)}`)
    if (!(data instanceof Uint8Array)) throw new InvalidArgumentError('snapshot.data must be a Uint8Array')
    const config = meta.config
    if (typeof config !== 'object' || config === null) throw new InvalidArgumentError('snapshot.meta.config must be an object')
    checkNodeList(config.voters, 'voters')
    checkNodeList(config.learners, 'learners')
    if (meta.index <= this.#snapshotIndex) {
      throw new InvalidArgumentError(`snapshot at index ${meta.index} is not newer than the stored snapshot at ${this.#snapshotIndex}`)
    }
  }

  /**
   * Applies a snapshot that passed {@link checkSnapshot}. When the stored
   * entry at the snapshot index has the snapshot's term, the log matches the
   * snapshot (Raft's log matching property) and entries after it are kept;
   * otherwise the log conflicts or is too short and is discarded whole, as
   * when a follower installs a leader's snapshot (Raft thesis §5.3).
   * @returns true when the log was discarded.
   */
  applySnapshot (index: number, term: number): boolean {
    const discard = this.termAt(index) !== term
    if (discard) this.#terms.length = 0
    else this.#terms.splice(0, index - this.#snapshotIndex)
    this.#snapshotIndex = index
    this.#snapshotTerm = term
    return discard
  }
}

function checkEntry (e: Entry, position: number): void {
  if (typeof e !== 'object' || e === null) throw new InvalidArgumentError(`entries[${position}] must be an object`)
  if (!isCount(e.index) || e.index < 1) throw new InvalidArgumentError(`entries[${position}].index must be a positive safe integer, got ${String(e.index)}`)
  if (!isCount(e.term) || e.term < 1) throw new InvalidArgumentError(`entries[${position}].term must be a positive safe integer, got ${String(e.term)}`)
  if (e.type !== 0 && e.type !== 1 && e.type !== 2) throw new InvalidArgumentError(`entries[${position}].type ${String(e.type)} is not an EntryType`)
  if (!(e.data instanceof Uint8Array)) throw new InvalidArgumentError(`entries[${position}].data must be a Uint8Array`)
  if (e.data.length > MAX_ENTRY_DATA_BYTES) {
    throw new InvalidArgumentError(`entries[${position}].data is ${e.data.length} bytes; the limit is ${MAX_ENTRY_DATA_BYTES}`)
  }
}

function checkHardState (hs: HardState): void {
  if (typeof hs !== 'object' || hs === null) throw new InvalidArgumentError('hardState must be an object or null')
  if (!isCount(hs.term)) throw new InvalidArgumentError(`hardState.term must be a non-negative safe integer, got ${String(hs.term)}`)
  if (!isCount(hs.commit)) throw new InvalidArgumentError(`hardState.commit must be a non-negative safe integer, got ${String(hs.commit)}`)
  if (hs.vote !== null && !isStorableId(hs.vote)) {
    throw new InvalidArgumentError(`hardState.vote must be null or a node id (well-formed string up to ${MAX_VOTE_BYTES} UTF-8 bytes)`)
  }
}

/**
 * Node ids are stored as UTF-8; a lone surrogate would come back as U+FFFD,
 * a different id, so it is refused rather than silently changed.
 */
function isStorableId (id: unknown): boolean {
  return typeof id === 'string' && !/\p{Cs}/u.test(id) && utf8(id).length <= MAX_VOTE_BYTES
}

function checkNodeList (list: unknown, what: string): void {
  if (!Array.isArray(list) || !list.every(isStorableId)) {
    throw new InvalidArgumentError(`snapshot.meta.config.${what} must be an array of node ids (well-formed strings up to ${MAX_VOTE_BYTES} UTF-8 bytes)`)
  }
}
