/**
 * Invalidation mode: the truth is elsewhere (the database); each node keeps
 * the copies it loaded or set, and a write or delete anywhere broadcasts an
 * invalidation of that key so every other node drops its copy.
 *
 * An invalidation this node did not hear leaves it serving a stale value,
 * so whenever one may have been missed every local copy is dropped: when
 * the channel reports a gap in a member's invalidations (those payloads are
 * gone), and when a member (re)connects, since while it was unreachable
 * (crashed, partitioned away, or this node was the one cut off) its writes
 * could not reach this node. A gossip link that broke while the connection
 * stayed up (gossip-links.ts) is such a cut too: onPeerReconnect reports it
 * when the link is whole again. Dropping costs reloads, never correctness.
 * The window that remains is gossipsub's: a member's invalidation published
 * after the reconnect but before it has learnt this node's subscription;
 * that is milliseconds, and the same as any pub/sub invalidation scheme.
 */
import type { ChannelMessage, GossipChannel } from '../../gossip/channel.js'
import { errorFields } from '../../gossip/logger.js'
import { onPeerReconnect } from '../service-host.js'
import type { BackendContext, BackendStats, CacheBackend } from './backend.js'
import { decodeUpdate, encodeUpdate, type CacheUpdate } from './cache-codec.js'
import { LocalStore, type StoredEntry } from './local-store.js'

export class InvalidationBackend<V> implements CacheBackend<V> {
  private readonly ctx: BackendContext<V>
  private readonly store: LocalStore<V>
  private readonly channel: GossipChannel
  private readonly offReconnect: () => void
  private readonly ttlMs: number
  private closed = false
  private readonly counts = { updatesReceived: 0, rejected: 0, droppedAll: 0 }

  constructor (ctx: BackendContext<V>) {
    this.ctx = ctx
    this.ttlMs = ctx.ttlMs ?? Infinity
    this.store = new LocalStore<V>({ maxEntries: ctx.maxEntries, idleMs: ctx.idleMs, clock: ctx.host.clock, onDrop: () => {} })
    this.channel = ctx.host.channel(ctx.topic)
    this.channel.on('message', m => { this.onGossip(m) })
    this.channel.on('gap', g => { this.dropAll(`gap in ${g.publisher}'s invalidations ${g.from}..${g.to}`) })
    this.offReconnect = onPeerReconnect(ctx.host.mesh, ctx.topic, id => { this.dropAll(`member ${id} (re)connected`) })
  }

  get (id: string): StoredEntry<V> | undefined {
    return this.store.get(id)
  }

  set (id: string, key: unknown, keyBytes: Uint8Array, value: V): void {
    this.setLoaded(id, key, keyBytes, value)
    this.ctx.sink.changed(key, 'set', value, 'local')
    this.publish({ op: 'invalidate', key: keyBytes })
  }

  /** A loaded value is what the source of truth holds: nothing to tell the others. */
  setLoaded (id: string, key: unknown, _keyBytes: Uint8Array, value: V): void {
    this.store.set(id, { key, value, hlc: null, expiresAt: this.ctx.host.clock() + this.ttlMs })
  }

  delete (id: string, key: unknown, keyBytes: Uint8Array): void {
    if (this.store.delete(id)) this.ctx.sink.changed(key, 'delete', undefined, 'local')
    this.publish({ op: 'invalidate', key: keyBytes })
  }

  clear (): void {
    for (const [, e] of [...this.store.entries()]) this.ctx.sink.changed(e.key, 'delete', undefined, 'local')
    this.store.clear()
    this.publish({ op: 'invalidate-all' })
  }

  entries (): Iterable<StoredEntry<V>> {
    return [...this.store.entries()].map(([, e]) => e)
  }

  size (): number {
    return this.store.size
  }

  /** Nothing to reconcile: copies are dropped, never merged. */
  async sync (): Promise<void> {}

  async room (): Promise<void> {
    await this.channel.room()
  }

  stats (): BackendStats {
    return { ...this.counts, tombstones: 0, staleUpdates: 0, repaired: 0, syncs: 0, syncFailures: 0, channel: this.channel.stats() }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.offReconnect()
    await this.channel.close()
  }

  private publish (u: CacheUpdate): void {
    if (!this.closed) this.channel.publish(encodeUpdate(u))
  }

  private onGossip (m: ChannelMessage): void {
    let u: CacheUpdate
    try {
      u = decodeUpdate(m.payload)
      if (u.op !== 'invalidate' && u.op !== 'invalidate-all') throw new Error('a replicated-mode update on an invalidation cache')
    } catch (err) {
      this.counts.rejected++
      this.ctx.log.warn({ publisher: m.publisher, ...errorFields(err) }, 'dropping a cache update')
      return
    }
    this.counts.updatesReceived++
    const { sink } = this.ctx
    if (u.op === 'invalidate-all') {
      sink.invalidated(null)
      for (const [, e] of [...this.store.entries()]) sink.changed(e.key, 'delete', undefined, 'remote')
      this.store.clear()
      return
    }
    const id = sink.idOf(u.key)
    sink.invalidated(id)
    const held = this.store.peek(id)
    this.store.delete(id)
    let key = held?.key
    try {
      key ??= sink.decodeKey(u.key)
    } catch {
      // The copy (if any) is dropped all the same; there is just no key to report.
      this.counts.rejected++
      return
    }
    sink.changed(key, 'delete', undefined, 'remote')
  }

  /** Drops every local copy (no change events: nothing changed, the copies are just no longer trusted). */
  private dropAll (why: string): void {
    if (this.closed) return
    this.ctx.sink.invalidated(null)
    if (this.store.size > 0) this.ctx.log.info({ entries: this.store.size, why }, 'dropping every local copy')
    this.store.clear()
    this.counts.droppedAll++
  }
}
