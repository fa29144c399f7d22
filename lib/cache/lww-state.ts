/**
 * A replicated cache's state and its merge rule: last writer wins by
 * hybrid logical clock, deletes leave tombstones, and `clear()` is a floor
 * below which everything is deleted. Every node applies every write it
 * hears of, in whatever order and however often: the outcome depends only
 * on the set of writes (the rule is commutative, associative and
 * idempotent; test/cache-lww.test.ts checks it), which is what lets
 * anti-entropy simply re-send entries.
 *
 * Tombstones are kept `tombstoneTtlMs` so that a write older than a delete
 * still loses when it arrives late (anti-entropy after a partition); a node
 * cut off for longer than that may bring a deleted key back. Entries that
 * leave by eviction or expiry raise `evictedFloor`: a write for an unknown
 * key at or below it is not stored, since it may be an old version of an
 * evicted key (not storing is a cache miss, never a stale value).
 */
import { setImmediate as nextTurn } from 'node:timers/promises'
import { VersionIndex } from './digest.js'
import { compareHlc, type Hlc } from './hlc.js'
import { LocalStore, type StoredEntry } from './local-store.js'

/**
 * Changes hashed per event-loop turn when a digest is read. Each costs a few
 * microseconds (two SHA-1s), and a cache written at 1,000 distinct keys a
 * second has 30,000 of them waiting at each 30 s anti-entropy round: hashed
 * at once, that stalled the node for 200-600 ms.
 */
export const SETTLE_SLICE = 256

export interface Tombstone {
  readonly key: unknown
  readonly keyBytes: Uint8Array
  readonly hlc: Hlc
  /** Wall-clock ms when it was stored here. */
  readonly at: number
}

export interface LwwStateOptions {
  readonly maxEntries: number
  readonly idleMs?: number
  readonly ttlMs?: number
  readonly tombstoneTtlMs: number
  readonly clock: () => number
}

function max (a: Hlc | null, b: Hlc): Hlc {
  return a === null || compareHlc(b, a) > 0 ? b : a
}

export class LwwState<V> {
  readonly live: LocalStore<V>
  readonly tombstones = new Map<string, Tombstone>()
  /** The anti-entropy digest of every version held, entries and tombstones, told of each change below. */
  readonly versions = new VersionIndex()
  /** Everything at or below this was cleared. */
  floor: Hlc | null = null
  private evictedFloor: Hlc | null = null
  private readonly ttlMs: number
  private readonly expires: boolean
  private readonly tombstoneTtlMs: number
  private readonly clock: () => number

  constructor (opts: LwwStateOptions) {
    this.ttlMs = opts.ttlMs ?? Infinity
    this.expires = opts.ttlMs !== undefined || opts.idleMs !== undefined
    this.tombstoneTtlMs = opts.tombstoneTtlMs
    this.clock = opts.clock
    this.live = new LocalStore<V>({
      maxEntries: opts.maxEntries,
      idleMs: opts.idleMs,
      clock: opts.clock,
      onDrop: (e, id) => {
        if (e.hlc !== null) this.evictedFloor = max(this.evictedFloor, e.hlc)
        this.versions.note(id, null)
      }
    })
  }

  /** The version this node holds for a key (entry or tombstone), or null. */
  version (id: string): Hlc | null {
    return this.live.peek(id)?.hlc ?? this.tombstones.get(id)?.hlc ?? null
  }

  /** Whether a write at `hlc` beats what this node holds for the key. */
  wins (id: string, hlc: Hlc): boolean {
    if (this.floor !== null && compareHlc(hlc, this.floor) <= 0) return false
    const held = this.version(id)
    if (held === null) return this.evictedFloor === null || compareHlc(hlc, this.evictedFloor) > 0
    return compareHlc(hlc, held) > 0
  }

  /** Stores a set if it wins; a set whose TTL has already run out is stored as a delete. Returns whether it won. */
  set (id: string, key: unknown, keyBytes: Uint8Array, value: V, hlc: Hlc): boolean {
    if (!this.wins(id, hlc)) return false
    const expiresAt = hlc.ms + this.ttlMs
    if (expiresAt <= this.clock()) return this.delete(id, key, keyBytes, hlc)
    this.tombstones.delete(id)
    const entry = { key, keyBytes, value, hlc, expiresAt }
    this.live.set(id, entry)
    this.versions.note(id, entry)
    return true
  }

  /** Stores a delete if it wins. Returns whether it won. */
  delete (id: string, key: unknown, keyBytes: Uint8Array, hlc: Hlc): boolean {
    if (!this.wins(id, hlc)) return false
    this.live.delete(id)
    const tomb = { key, keyBytes, hlc, at: this.clock() }
    this.tombstones.set(id, tomb)
    this.versions.note(id, tomb)
    return true
  }

  /** Raises the clear floor; returns the live entries it removed. */
  clear (hlc: Hlc): Array<StoredEntry<V>> {
    if (this.floor !== null && compareHlc(hlc, this.floor) <= 0) return []
    this.floor = hlc
    const removed: Array<StoredEntry<V>> = []
    for (const [id, e] of [...this.live.entries()]) {
      if (e.hlc !== null && compareHlc(e.hlc, hlc) <= 0) {
        this.live.delete(id)
        this.versions.note(id, null)
        removed.push(e)
      }
    }
    for (const [id, t] of this.tombstones) {
      if (compareHlc(t.hlc, hlc) <= 0) {
        this.tombstones.delete(id)
        this.versions.note(id, null)
      }
    }
    return removed
  }

  /**
   * The digest of the versions held (digest.ts), without the entries whose
   * idle timeout or expiry has passed: they are dropped first, as a read of
   * each would, so that two nodes holding the same live versions agree.
   */
  digest (): Uint8Array {
    if (this.expires) this.live.dropExpired()
    return this.versions.digest()
  }

  /**
   * digest(), with the changes noted when it starts hashed SETTLE_SLICE at
   * a time, one event-loop turn each, so that a large backlog does not block
   * the node; the few noted meanwhile are hashed at the end.
   */
  async digestInTurns (): Promise<Uint8Array> {
    for (let left = this.versions.pending; left > SETTLE_SLICE; left -= SETTLE_SLICE) {
      this.versions.settleSome(SETTLE_SLICE)
      await nextTurn()
    }
    return this.digest()
  }

  /** Drops tombstones older than `tombstoneTtlMs`. */
  collectTombstones (): number {
    const before = this.clock() - this.tombstoneTtlMs
    let n = 0
    for (const [id, t] of this.tombstones) {
      if (t.at <= before) {
        this.tombstones.delete(id)
        this.versions.note(id, null)
        n++
      }
    }
    return n
  }
}
