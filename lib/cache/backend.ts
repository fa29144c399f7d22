/**
 * The seam between a Cache (the public API: encoding, limits, getOrLoad,
 * change events) and its mode, which owns the entries and the network:
 * replicated.ts or invalidation.ts.
 */
import type { ChannelStats } from '../../gossip/channel.js'
import type { Logger } from '../../gossip/logger.js'
import type { ServiceHost } from '../service-host.js'
import type { StoredEntry } from './local-store.js'

export interface CacheChange<K, V> {
  readonly key: K
  readonly op: 'set' | 'delete'
  /** The new value of a set; undefined for a delete. */
  readonly value: V | undefined
  /** Whether this node made the change or heard of it from another. */
  readonly origin: 'local' | 'remote'
}

/** What a mode tells its Cache. */
export interface BackendSink<V> {
  /** A change to report to `on('change')` listeners. */
  changed: (key: unknown, op: 'set' | 'delete', value: V | undefined, origin: 'local' | 'remote') => void
  /** The key's value may have changed elsewhere (null: every key): a load in flight must not be cached. */
  invalidated: (id: string | null) => void
  /** Decodes a value from the wire; throws if it is not msgpack. */
  decodeValue: (bytes: Uint8Array) => V
  /** Encodes a held value for anti-entropy. */
  encodeValue: (value: V) => Uint8Array
  /** Decodes a key from the wire; throws if it is not msgpack. */
  decodeKey: (bytes: Uint8Array) => unknown
  /** The id a key's bytes are stored under. */
  idOf: (keyBytes: Uint8Array) => string
  /** A key's bytes from its id: entries keep only the id (see cache.ts encodeKey). */
  keyBytesOf: (id: string) => Uint8Array
}

export interface BackendContext<V> {
  readonly host: ServiceHost
  readonly name: string
  /** The gossip topic; also the prefix of the cache's RPC methods. */
  readonly topic: string
  readonly log: Logger
  readonly sink: BackendSink<V>
  readonly maxEntries: number
  readonly ttlMs?: number
  readonly idleMs?: number
  readonly tombstoneTtlMs: number
  readonly maxClockSkewMs: number
  readonly syncTimeoutMs: number
  readonly antiEntropyIntervalMs: number
}

/** Counters of a mode, merged into CacheStats. */
export interface BackendStats {
  readonly tombstones: number
  readonly updatesReceived: number
  /** Remote writes that lost to a newer version here. */
  readonly staleUpdates: number
  /** Other nodes' writes taken in by anti-entropy (replicated mode): ones the gossip had not brought. */
  readonly repaired: number
  /** Wire messages dropped: malformed, of the other mode, from a wrong origin, or stamped too far ahead. */
  readonly rejected: number
  readonly syncs: number
  readonly syncFailures: number
  /** Times every local copy was dropped (invalidation mode: after a cut or an unrepairable gap). */
  readonly droppedAll: number
  readonly channel: ChannelStats
}

export interface CacheBackend<V> {
  get: (id: string) => StoredEntry<V> | undefined
  /** An application write: applied here, then propagated. */
  set: (id: string, key: unknown, keyBytes: Uint8Array, value: V, valueBytes: Uint8Array) => void
  /** A value getOrLoad loaded from the source of truth. */
  setLoaded: (id: string, key: unknown, keyBytes: Uint8Array, value: V, valueBytes: Uint8Array) => void
  delete: (id: string, key: unknown, keyBytes: Uint8Array) => void
  clear: () => void
  entries: () => Iterable<StoredEntry<V>>
  size: () => number
  /** Resolves once the channel has room for more writes (GossipChannel.room): how writers feel backpressure. */
  room: () => Promise<void>
  /** Anti-entropy with every live member now (a no-op in invalidation mode). */
  sync: () => Promise<void>
  stats: () => BackendStats
  close: () => Promise<void>
}
