/**
 * A named cache (`cluster.cache(name, opts)`): the public API over one of
 * two modes (backend.ts), with keys and values encoded by msgpack and held
 * to size limits, getOrLoad's single flight, and change events.
 *
 * Names are namespaced: the cache's gossip topic and RPC methods are
 * `raftmesh/cache/<name>`, and a plugin should prefix its names
 * (`reporting:queries`) so that its caches cannot collide with core's.
 * Values are held as given (local writes) or as decoded (remote ones):
 * treat them as immutable.
 */
import { EventEmitter } from 'node:events'
import { Packr } from 'msgpackr'
import { fromString as bytesFromString } from 'uint8arrays/from-string'
import { toString as bytesToString } from 'uint8arrays/to-string'
import { errorFields, type Logger } from '../../gossip/logger.js'
import { ClusterStoppedError, InvalidArgumentError } from '../errors.js'
import type { ServiceHost } from '../service-host.js'
import type { BackendContext, BackendSink, BackendStats, CacheBackend, CacheChange } from './backend.js'
import { CacheEntryTooLargeError } from './errors.js'
import { InvalidationBackend } from './invalidation.js'
import { ReplicatedBackend } from './replicated.js'

export type { CacheChange } from './backend.js'

export type CacheMode = 'replicated' | 'invalidation'

export interface CacheOptions {
  /** `replicated`: a full copy on every node. `invalidation`: local copies, writes broadcast invalidations. */
  readonly mode: CacheMode
  /** An entry is gone this long after it was written. Default: never. */
  readonly ttlMs?: number
  /** An entry is gone when not read for this long. Default: never. */
  readonly idleMs?: number
  /** Entries held on this node; the least recently used go first. Default 10,000. */
  readonly maxEntries?: number
  /** Largest key, msgpack-encoded. Default 1 KiB. */
  readonly maxKeyBytes?: number
  /** Largest value, msgpack-encoded. Default 64 KiB, at most 128 KiB. */
  readonly maxValueBytes?: number
  /** Replicated: how long a delete is remembered, so an older write arriving late still loses. Default 10 minutes. */
  readonly tombstoneTtlMs?: number
  /** Replicated: writes stamped further ahead of this node's clock are refused. Default 60 s. */
  readonly maxClockSkewMs?: number
  /** Replicated: deadline of each anti-entropy call. Default 5 s. */
  readonly syncTimeoutMs?: number
  /** Replicated: anti-entropy with one member picked at random this often on average (each wait drawn from half to one and a half of it), besides on (re)connection and gaps. Default 30 s. */
  readonly antiEntropyIntervalMs?: number
}

export interface CacheStats extends BackendStats {
  readonly entries: number
  readonly hits: number
  readonly misses: number
  /** Loader calls made by getOrLoad (concurrent callers share one). */
  readonly loads: number
  /** Loaded values not cached: the key was invalidated during the load, or the value is over the size limit. */
  readonly loadsDiscarded: number
}

export interface CacheEvents<K, V> {
  change: [CacheChange<K, V>]
}

/** Short enough that `raftmesh/cache/<name>/sync` is a valid RPC method name (128 characters). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$/
/** Leaves room in a channel payload (256 KiB) for the key and the update's envelope. */
const MAX_VALUE_LIMIT = 128 * 1024

function option (name: string, v: number | undefined, dflt: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return dflt
  if (!Number.isInteger(v) || v <= 0 || v > max) throw new InvalidArgumentError(`${name} must be an integer in 1..${max}, got ${v}`)
  return v
}

interface Flight<V> {
  readonly promise: Promise<V>
  /** `invalidated` is set when the key is invalidated while the loader runs; the flight then takes no more callers. */
  readonly state: { invalidated: boolean }
}

/** A named cache; see CacheOptions for its modes and limits. */
export class Cache<K, V> extends EventEmitter<CacheEvents<K, V>> {
  readonly name: string
  readonly mode: CacheMode
  private readonly backend: CacheBackend<V>
  private readonly log: Logger
  private readonly maxKeyBytes: number
  private readonly maxValueBytes: number
  private readonly packr = new Packr({ useRecords: false, mapsAsObjects: true })
  private readonly flights = new Map<string, Flight<V>>()
  private closed = false
  private readonly counts = { hits: 0, misses: 0, loads: 0, loadsDiscarded: 0 }

  /**
   * Opens the cache `name` on this node and starts anti-entropy with the
   * members that have it open (replicated mode). One instance per name per
   * node: the Cluster keeps it.
   */
  constructor (host: ServiceHost, name: string, opts: CacheOptions) {
    super()
    if (typeof name !== 'string' || !NAME.test(name)) throw new InvalidArgumentError(`a cache name must match ${NAME}, got ${JSON.stringify(name)}`)
    if (opts.mode !== 'replicated' && opts.mode !== 'invalidation') throw new InvalidArgumentError(`cache mode must be 'replicated' or 'invalidation', got ${JSON.stringify(opts.mode)}`)
    this.name = name
    this.mode = opts.mode
    this.maxKeyBytes = option('maxKeyBytes', opts.maxKeyBytes, 1024, 64 * 1024)
    this.maxValueBytes = option('maxValueBytes', opts.maxValueBytes, 64 * 1024, MAX_VALUE_LIMIT)
    this.log = host.logger.child({ module: 'cache', cache: name })
    const ctx: BackendContext<V> = {
      host,
      name,
      topic: `raftmesh/cache/${name}`,
      log: this.log,
      sink: this.sink(),
      maxEntries: option('maxEntries', opts.maxEntries, 10_000),
      ttlMs: opts.ttlMs === undefined ? undefined : option('ttlMs', opts.ttlMs, 0),
      idleMs: opts.idleMs === undefined ? undefined : option('idleMs', opts.idleMs, 0),
      tombstoneTtlMs: option('tombstoneTtlMs', opts.tombstoneTtlMs, 10 * 60_000),
      maxClockSkewMs: option('maxClockSkewMs', opts.maxClockSkewMs, 60_000),
      syncTimeoutMs: option('syncTimeoutMs', opts.syncTimeoutMs, 5000),
      antiEntropyIntervalMs: option('antiEntropyIntervalMs', opts.antiEntropyIntervalMs, 30_000)
    }
    this.backend = opts.mode === 'replicated' ? new ReplicatedBackend<V>(ctx) : new InvalidationBackend<V>(ctx)
  }

  /** The value held on this node, or undefined. Never waits. */
  get (key: K): V | undefined {
    this.open()
    const e = this.backend.get(this.encodeKey(key).id)
    if (e === undefined) this.counts.misses++
    else this.counts.hits++
    return e?.value
  }

  /**
   * Writes `value`. Resolves once it is stamped and applied on this node;
   * it then reaches the others (replicated: the value; invalidation: an
   * invalidation). While members take updates slower than this node makes
   * them, it resolves only once its update's turn to leave is near
   * (backpressure, bounded at about 1 MiB queued), so a writer that awaits
   * it cannot outrun them into lost updates. Rejects with
   * CacheEntryTooLargeError over the limits.
   */
  async set (key: K, value: V): Promise<void> {
    this.open()
    const { id, keyBytes } = this.encodeKey(key)
    const valueBytes = this.encodeValue(value)
    this.invalidate(id)
    this.backend.set(id, key, keyBytes, value, valueBytes)
    await this.backend.room()
  }

  /** Deletes the key here and on every node. */
  async delete (key: K): Promise<void> {
    this.open()
    const { id, keyBytes } = this.encodeKey(key)
    this.invalidate(id)
    this.backend.delete(id, key, keyBytes)
    await this.backend.room()
  }

  /** Deletes every entry on every node (replicated: every write stamped before this one). */
  async clear (): Promise<void> {
    this.open()
    this.invalidate(null)
    this.backend.clear()
  }

  /**
   * The held value, or the loader's. One load per key per node at a time:
   * concurrent callers share it. The loaded value is cached unless the key
   * was written, deleted or invalidated (here or anywhere) while it loaded,
   * since the load may have read what that write replaced; a caller that
   * comes after such an invalidation starts a load of its own rather than
   * share that one, which could hand it a value older than a write this node
   * already knows of. A loader that returns undefined caches nothing; one
   * that throws rejects every caller.
   */
  async getOrLoad (key: K, loader: (key: K) => Promise<V>): Promise<V> {
    this.open()
    const { id, keyBytes } = this.encodeKey(key)
    const held = this.backend.get(id)
    if (held !== undefined) {
      this.counts.hits++
      return held.value
    }
    this.counts.misses++
    let flight = this.flights.get(id)
    if (flight === undefined) {
      this.counts.loads++
      const state = { invalidated: false }
      flight = { promise: this.load(id, state, key, keyBytes, loader), state }
      this.flights.set(id, flight)
    }
    return await flight.promise
  }

  keys (): K[] {
    return [...this.backend.entries()].map(e => e.key as K)
  }

  entries (): Array<[K, V]> {
    return [...this.backend.entries()].map(e => [e.key as K, e.value])
  }

  /** Entries held on this node. */
  get size (): number {
    return this.backend.size()
  }

  /** Runs anti-entropy with every member that has the cache open, now (replicated; resolves at once otherwise). */
  async sync (): Promise<void> {
    this.open()
    await this.backend.sync()
  }

  stats (): CacheStats {
    return { ...this.backend.stats(), ...this.counts, entries: this.backend.size() }
  }

  /** Stops taking part: no more updates in or out. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.backend.close()
  }

  private async load (id: string, state: Flight<V>['state'], key: K, keyBytes: Uint8Array, loader: (key: K) => Promise<V>): Promise<V> {
    // Waits a turn so the flight is registered before the loader can run (and invalidate it).
    await Promise.resolve()
    try {
      const value = await loader(key)
      if (value === undefined || this.closed) return value
      if (state.invalidated) {
        this.counts.loadsDiscarded++
        return value
      }
      let valueBytes: Uint8Array
      try {
        valueBytes = this.encodeValue(value)
      } catch (err) {
        // The caller still gets what it asked for; only caching is refused.
        this.counts.loadsDiscarded++
        this.log.warn({ ...errorFields(err) }, 'a loaded value is not cached')
        return value
      }
      this.backend.setLoaded(id, key, keyBytes, value, valueBytes)
      return value
    } finally {
      if (this.flights.get(id)?.state === state) this.flights.delete(id)
    }
  }

  private invalidate (id: string | null): void {
    // Every write passes here; most caches have no load in flight.
    if (this.flights.size === 0) return
    for (const fid of id === null ? [...this.flights.keys()] : [id]) {
      const f = this.flights.get(fid)
      if (f === undefined) continue
      f.state.invalidated = true
      this.flights.delete(fid)
    }
  }

  private sink (): BackendSink<V> {
    return {
      changed: (key, op, value, origin) => { if (this.listenerCount('change') > 0) this.emit('change', { key: key as K, op, value, origin }) },
      invalidated: id => { this.invalidate(id) },
      decodeValue: bytes => this.packr.unpack(bytes) as V,
      decodeKey: bytes => this.packr.unpack(bytes),
      encodeValue: value => this.packr.pack(value),
      idOf: keyBytes => bytesToString(keyBytes, 'latin1'),
      keyBytesOf: id => bytesFromString(id, 'latin1')
    }
  }

  private encodeKey (key: K): { id: string, keyBytes: Uint8Array } {
    if (key === undefined) throw new InvalidArgumentError(`cache ${this.name}: a key cannot be undefined`)
    const keyBytes = this.packr.pack(key)
    if (keyBytes.byteLength > this.maxKeyBytes) throw new CacheEntryTooLargeError(this.name, 'key', keyBytes.byteLength, this.maxKeyBytes)
    // One character per byte: shorter and cheaper to make than base64, and it gives the bytes back
    // (keyBytesOf), so entries hold no copy of them: a received key's bytes are a view of the whole
    // gossip message (~17 KiB), which a stored view kept alive for as long as the entry lived.
    return { id: bytesToString(keyBytes, 'latin1'), keyBytes }
  }

  private encodeValue (value: V): Uint8Array {
    if (value === undefined) throw new InvalidArgumentError(`cache ${this.name}: a value cannot be undefined (delete the key instead)`)
    const bytes = this.packr.pack(value)
    if (bytes.byteLength > this.maxValueBytes) throw new CacheEntryTooLargeError(this.name, 'value', bytes.byteLength, this.maxValueBytes)
    return bytes
  }

  private open (): void {
    if (this.closed) throw new ClusterStoppedError(`cache ${this.name} is closed`)
  }
}
