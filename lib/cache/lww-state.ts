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
import { hashVersion, VersionIndex, type VersionHash } from './digest.js'
import { compareHlc, type Hlc } from './hlc.js'
import { LocalStore, type StoredEntry } from './local-store.js'

export interface Tombstone {
  readonly hlc: Hlc
  /** Wall-clock ms when it was stored here. */
  readonly at: number
  /** Its place in the anti-entropy digest. */
  readonly digest: VersionHash
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
  readonly versions = new VersionIndex(id => this.live.holds(id) || this.tombstones.has(id))
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
        this.versions.swap(id, e.digest ?? null, null)
      }
    })
  }

  /** The version this node holds for a key (entry or tombstone), or null. */
  version (id: string): Hlc | null {
    return this.held(id)?.hlc ?? null
  }

  /** Whether a write at `hlc` beats what this node holds for the key. */
  wins (id: string, hlc: Hlc): boolean {
    return this.beats(hlc, this.held(id))
  }

  /** Stores a set if it wins; a set whose TTL has already run out is stored as a delete. Returns whether it won. */
  set (id: string, key: unknown, keyBytes: Uint8Array, value: V, hlc: Hlc): boolean {
    const held = this.held(id)
    if (!this.beats(hlc, held)) return false
    const expiresAt = hlc.ms + this.ttlMs
    if (expiresAt <= this.clock()) return this.delete(id, keyBytes, hlc)
    const was = held?.digest ?? null
    if (held !== undefined && !('value' in held)) this.tombstones.delete(id)
    const entry = { key, value, hlc, expiresAt, digest: hashVersion(keyBytes, hlc, was?.bucket) }
    this.live.set(id, entry)
    this.versions.swap(id, was, entry.digest)
    return true
  }

  /** Stores a delete if it wins. Returns whether it won. */
  delete (id: string, keyBytes: Uint8Array, hlc: Hlc): boolean {
    const held = this.held(id)
    if (!this.beats(hlc, held)) return false
    const was = held?.digest ?? null
    if (held !== undefined && 'value' in held) this.live.delete(id)
    const tomb = { hlc, at: this.clock(), digest: hashVersion(keyBytes, hlc, was?.bucket) }
    this.tombstones.set(id, tomb)
    this.versions.swap(id, was, tomb.digest)
    return true
  }

  /** The live entry or the tombstone held for a key (one lookup each, at most: every write asks). */
  private held (id: string): StoredEntry<V> | Tombstone | undefined {
    return this.live.peek(id) ?? this.tombstones.get(id)
  }

  private beats (hlc: Hlc, held: StoredEntry<V> | Tombstone | undefined): boolean {
    if (this.floor !== null && compareHlc(hlc, this.floor) <= 0) return false
    if (held === undefined) return this.evictedFloor === null || compareHlc(hlc, this.evictedFloor) > 0
    return compareHlc(hlc, held.hlc as Hlc) > 0
  }

  /** Raises the clear floor; returns the live entries it removed. */
  clear (hlc: Hlc): Array<StoredEntry<V>> {
    if (this.floor !== null && compareHlc(hlc, this.floor) <= 0) return []
    this.floor = hlc
    const removed: Array<StoredEntry<V>> = []
    for (const [id, e] of [...this.live.entries()]) {
      if (e.hlc !== null && compareHlc(e.hlc, hlc) <= 0) {
        this.live.delete(id)
        this.versions.swap(id, e.digest ?? null, null)
        removed.push(e)
      }
    }
    for (const [id, t] of this.tombstones) {
      if (compareHlc(t.hlc, hlc) <= 0) {
        this.tombstones.delete(id)
        this.versions.swap(id, t.digest, null)
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

  /** Drops tombstones older than `tombstoneTtlMs`. */
  collectTombstones (): number {
    const before = this.clock() - this.tombstoneTtlMs
    let n = 0
    for (const [id, t] of this.tombstones) {
      if (t.at <= before) {
        this.tombstones.delete(id)
        this.versions.swap(id, t.digest, null)
        n++
      }
    }
    return n
  }
}
