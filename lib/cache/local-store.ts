/**
 * A cache's local entries: lru-cache for the entry bound (least recently
 * used goes first) and the idle timeout (`idleMs`, age reset on every
 * read), plus an absolute expiry per entry (`ttlMs`) checked on read, since
 * lru-cache measures one of the two and not both.
 */
import { LRUCache } from 'lru-cache'
import type { Hlc } from './hlc.js'

export interface StoredEntry<V> {
  readonly key: unknown
  /** The key as msgpack bytes: what the network carries. */
  readonly keyBytes: Uint8Array
  readonly value: V
  /** Version of a replicated entry; null in invalidation mode. */
  readonly hlc: Hlc | null
  /** Wall-clock ms after which the entry is gone; Infinity without a TTL. */
  readonly expiresAt: number
}

export interface LocalStoreOptions<V> {
  readonly maxEntries: number
  readonly idleMs?: number
  readonly clock: () => number
  /** An entry left by eviction or expiry (not by set or delete). */
  readonly onDrop: (entry: StoredEntry<V>, id: string) => void
}

export class LocalStore<V> {
  private readonly lru: LRUCache<string, StoredEntry<V>>
  private readonly clock: () => number
  private readonly onDrop: (entry: StoredEntry<V>, id: string) => void

  constructor (opts: LocalStoreOptions<V>) {
    this.clock = opts.clock
    this.onDrop = opts.onDrop
    this.lru = new LRUCache<string, StoredEntry<V>>({
      max: opts.maxEntries,
      ...(opts.idleMs === undefined ? {} : { ttl: opts.idleMs, updateAgeOnGet: true, ttlResolution: 0 }),
      perf: { now: opts.clock },
      dispose: (entry, id, reason) => { if (reason === 'evict' || reason === 'expire') this.onDrop(entry, id) }
    })
  }

  get size (): number {
    return this.lru.size
  }

  /** A live entry, counting as a use (LRU order, idle age). */
  get (id: string): StoredEntry<V> | undefined {
    return this.unexpired(id, this.lru.get(id))
  }

  /** A live entry, without counting as a use. */
  peek (id: string): StoredEntry<V> | undefined {
    return this.unexpired(id, this.lru.peek(id))
  }

  set (id: string, entry: StoredEntry<V>): void {
    this.lru.set(id, entry)
  }

  delete (id: string): boolean {
    return this.lru.delete(id)
  }

  clear (): void {
    this.lru.clear()
  }

  /** Live entries, most recently used first, without counting as uses. */
  * entries (): IterableIterator<[string, StoredEntry<V>]> {
    this.lru.purgeStale()
    const now = this.clock()
    for (const [id, e] of this.lru.entries()) if (e.expiresAt > now) yield [id, e]
  }

  /** Drops every entry past its idle timeout or its expiry now, rather than when next read. */
  dropExpired (): void {
    this.lru.purgeStale()
    const now = this.clock()
    const expired = [...this.lru.entries()].filter(([, e]) => e.expiresAt <= now)
    for (const [id, e] of expired) this.unexpired(id, e)
  }

  private unexpired (id: string, e: StoredEntry<V> | undefined): StoredEntry<V> | undefined {
    if (e === undefined || e.expiresAt > this.clock()) return e
    this.lru.delete(id)
    this.onDrop(e, id)
    return undefined
  }
}
