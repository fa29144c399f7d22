/**
 * A cache's local entries: lru-cache for the entry bound (least recently
 * used goes first), and here the two deadlines an entry may have, the idle
 * timeout (`idleMs`, reset by every read) and its absolute expiry
 * (`expiresAt`, from `ttlMs`), both checked on every read.
 *
 * dropExpired() finds the entries past a deadline through a wheel of
 * one-second buckets instead of a pass over the cache: the anti-entropy
 * digest drops them before every exchange, and that pass took 57-66 ms with
 * 100,000 entries and 1.6-1.9 s with 1,000,000. An entry is filed under
 * the bucket of the deadline it had when stored; a read only moves its idle
 * deadline later, so when its bucket comes it is either due or filed again
 * under its later deadline.
 */
import { LRUCache } from 'lru-cache'
import type { VersionHash } from './digest.js'
import type { Hlc } from './hlc.js'

export interface StoredEntry<V> {
  readonly key: unknown
  readonly value: V
  /** Version of a replicated entry; null in invalidation mode. */
  readonly hlc: Hlc | null
  /** Wall-clock ms after which the entry is gone; Infinity without a TTL. */
  readonly expiresAt: number
  /** A replicated entry's place in the anti-entropy digest. */
  readonly digest?: VersionHash
}

export interface LocalStoreOptions<V> {
  readonly maxEntries: number
  readonly idleMs?: number
  readonly clock: () => number
  /** An entry left by eviction or expiry (not by set or delete). */
  readonly onDrop: (entry: StoredEntry<V>, id: string) => void
}

const BUCKET_MS = 1000

interface Slot<V> {
  readonly entry: StoredEntry<V>
  /** Wall-clock ms of the last read (or the write). */
  usedAt: number
  /** The wheel bucket it is filed under; null when it has no deadline. */
  bucket: number | null
}

export class LocalStore<V> {
  private readonly lru: LRUCache<string, Slot<V>>
  private readonly idleMs: number
  private readonly clock: () => number
  private readonly onDrop: (entry: StoredEntry<V>, id: string) => void
  private readonly wheel = new Map<number, Set<string>>()

  constructor (opts: LocalStoreOptions<V>) {
    this.clock = opts.clock
    this.onDrop = opts.onDrop
    this.idleMs = opts.idleMs ?? Infinity
    this.lru = new LRUCache<string, Slot<V>>({
      max: opts.maxEntries,
      dispose: (slot, id, reason) => {
        if (reason !== 'evict') return
        this.unfile(id, slot)
        this.onDrop(slot.entry, id)
      }
    })
  }

  get size (): number {
    return this.lru.size
  }

  /** A live entry, counting as a use (LRU order, idle age). */
  get (id: string): StoredEntry<V> | undefined {
    return this.live(id, this.lru.get(id), true)
  }

  /** Whether an entry is stored under `id`, past its deadlines or not (no side effects). */
  holds (id: string): boolean {
    return this.lru.has(id)
  }

  /** A live entry, without counting as a use. */
  peek (id: string): StoredEntry<V> | undefined {
    return this.live(id, this.lru.peek(id), false)
  }

  set (id: string, entry: StoredEntry<V>): void {
    const old = this.lru.peek(id)
    if (old !== undefined) this.unfile(id, old)
    const slot: Slot<V> = { entry, usedAt: this.clock(), bucket: null }
    this.lru.set(id, slot)
    this.file(id, slot)
  }

  delete (id: string): boolean {
    const slot = this.lru.peek(id)
    if (slot === undefined) return false
    this.unfile(id, slot)
    return this.lru.delete(id)
  }

  clear (): void {
    this.lru.clear()
    this.wheel.clear()
  }

  /** Live entries, most recently used first, without counting as uses. */
  * entries (): IterableIterator<[string, StoredEntry<V>]> {
    const now = this.clock()
    for (const [id, slot] of this.lru.entries()) if (this.deadline(slot) > now) yield [id, slot.entry]
  }

  /** Drops every entry past its idle timeout or its expiry now, rather than when next read. */
  dropExpired (): void {
    const now = this.clock()
    const current = Math.floor(now / BUCKET_MS)
    for (const [bucket, ids] of this.wheel) {
      if (bucket > current) continue
      for (const id of ids) {
        const slot = this.lru.peek(id) as Slot<V>
        if (this.deadline(slot) <= now) this.drop(id, slot)
        else if (Math.floor(this.deadline(slot) / BUCKET_MS) !== bucket) {
          this.unfile(id, slot)
          this.file(id, slot)
        }
      }
    }
  }

  /** The slot's entry, unless a deadline has passed (then it is dropped now); a use restarts its idle time. */
  private live (id: string, slot: Slot<V> | undefined, use: boolean): StoredEntry<V> | undefined {
    if (slot === undefined) return undefined
    const now = this.clock()
    if (this.deadline(slot) <= now) {
      this.drop(id, slot)
      return undefined
    }
    if (use) slot.usedAt = now
    return slot.entry
  }

  private deadline (slot: Slot<V>): number {
    return Math.min(slot.entry.expiresAt, slot.usedAt + this.idleMs)
  }

  private drop (id: string, slot: Slot<V>): void {
    this.unfile(id, slot)
    this.lru.delete(id)
    this.onDrop(slot.entry, id)
  }

  private file (id: string, slot: Slot<V>): void {
    const deadline = this.deadline(slot)
    if (deadline === Infinity) return
    const bucket = Math.floor(deadline / BUCKET_MS)
    slot.bucket = bucket
    let ids = this.wheel.get(bucket)
    if (ids === undefined) this.wheel.set(bucket, ids = new Set())
    ids.add(id)
  }

  private unfile (id: string, slot: Slot<V>): void {
    if (slot.bucket === null) return
    const ids = this.wheel.get(slot.bucket)
    ids?.delete(id)
    if (ids?.size === 0) this.wheel.delete(slot.bucket)
    slot.bucket = null
  }
}
