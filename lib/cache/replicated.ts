/**
 * Replicated mode: every node holds every entry. A write is stamped with
 * the node's hybrid logical clock, applied here, and published on the
 * cache's gossip channel (which batches many writes into one message);
 * every node applies it by last-writer-wins (lww-state.ts).
 *
 * Gossip alone loses writes a node was not connected for (a partition, a
 * restart, a gap the channel reports). Anti-entropy repairs them: this node
 * sends a member its digest (digest.ts), the member answers with its
 * entries in the buckets that differ, and this node pushes back its own
 * for those buckets, so one exchange brings both sides to the merge of the
 * two. It runs with every member when the cache opens, whenever a member
 * (re)connects, re-subscribes or its gossip link is whole again after a
 * break, after a gap in a member's updates, and every
 * `antiEntropyIntervalMs` (on average) with one member picked at random
 * (among those seen subscribed, even if gossipsub lost them: channel.ts), for the
 * losses nothing else reveals (the last update before a member went
 * quiet, or a first update overtaken by the next one).
 *
 * Writes from the network are trusted as far as the members are (the
 * channel's note on authentication); a gossiped write must carry its
 * publisher's own timestamp, and one stamped more than `maxClockSkewMs`
 * ahead of this node's clock is refused, so one bad clock cannot push every
 * node's clock into the future.
 */
import type { ChannelMessage, GossipChannel } from '../../gossip/channel.js'
import { errorFields } from '../../gossip/logger.js'
import { ClusterStoppedError } from '../errors.js'
import { onPeerReconnect } from '../service-host.js'
import type { BackendContext, BackendStats, CacheBackend } from './backend.js'
import { decodeSyncPush, decodeSyncRequest, decodeSyncResponse, decodeUpdate, encodeSyncPush, encodeSyncRequest, encodeSyncResponse, encodeUpdate, type CacheUpdate, type WireEntry } from './cache-codec.js'
import { differingBuckets } from './digest.js'
import { compareHlc, HybridClock, type Hlc } from './hlc.js'
import type { StoredEntry } from './local-store.js'
import { LwwState } from './lww-state.js'

/** Bytes of entries one sync response or push carries; the rest follows in further rounds. */
const SYNC_BUDGET_BYTES = 512 * 1024
/** Least time from the start of one exchange with a member to the start of the next. */
const MIN_SYNC_SPACING_MS = 1000
/** Rounds of one anti-entropy exchange before it gives up until the next trigger. */
const MAX_SYNC_ROUNDS = 64

export class ReplicatedBackend<V> implements CacheBackend<V> {
  private readonly ctx: BackendContext<V>
  private readonly state: LwwState<V>
  private readonly clock: HybridClock
  private readonly channel: GossipChannel
  private readonly offReconnect: () => void
  private readonly collector: NodeJS.Timeout
  private rounds: NodeJS.Timeout | null = null
  /** Members with an exchange running, and whether another was asked for meanwhile. */
  private readonly syncing = new Map<string, { again: boolean }>()
  private closed = false
  private readonly counts = { updatesReceived: 0, staleUpdates: 0, repaired: 0, rejected: 0, syncs: 0, syncFailures: 0 }

  constructor (ctx: BackendContext<V>) {
    this.ctx = ctx
    this.clock = new HybridClock(ctx.host.nodeId, ctx.host.clock)
    this.state = new LwwState<V>({ maxEntries: ctx.maxEntries, idleMs: ctx.idleMs, ttlMs: ctx.ttlMs, tombstoneTtlMs: ctx.tombstoneTtlMs, clock: ctx.host.clock })
    this.channel = ctx.host.channel(ctx.topic)
    this.channel.on('message', m => { this.onGossip(m) })
    this.channel.on('gap', g => { this.syncSoon(g.publisher) })
    ctx.host.calls.handle(`${ctx.topic}/sync`, async body => await this.serveSync(body))
    ctx.host.calls.handle(`${ctx.topic}/push`, async (body, { from }) => await this.servePush(body, from))
    this.offReconnect = onPeerReconnect(ctx.host.mesh, ctx.topic, id => { this.syncSoon(id) })
    this.collector = setInterval(() => { this.state.collectTombstones() }, Math.max(1000, ctx.tombstoneTtlMs / 4)).unref()
    this.nextRound()
    this.sync().catch(() => {})
  }

  get (id: string): StoredEntry<V> | undefined {
    return this.state.live.get(id)
  }

  set (id: string, key: unknown, keyBytes: Uint8Array, value: V, valueBytes: Uint8Array): void {
    const hlc = this.clock.now()
    this.state.set(id, key, keyBytes, value, hlc)
    this.ctx.sink.changed(key, 'set', value, 'local')
    this.publish({ op: 'set', key: keyBytes, value: valueBytes, hlc })
  }

  setLoaded (id: string, key: unknown, keyBytes: Uint8Array, value: V, valueBytes: Uint8Array): void {
    this.set(id, key, keyBytes, value, valueBytes)
  }

  delete (id: string, key: unknown, keyBytes: Uint8Array): void {
    const hlc = this.clock.now()
    const had = this.state.live.peek(id) !== undefined
    this.state.delete(id, keyBytes, hlc)
    if (had) this.ctx.sink.changed(key, 'delete', undefined, 'local')
    this.publish({ op: 'delete', key: keyBytes, hlc })
  }

  clear (): void {
    const hlc = this.clock.now()
    for (const e of this.state.clear(hlc)) this.ctx.sink.changed(e.key, 'delete', undefined, 'local')
    this.publish({ op: 'clear', hlc })
  }

  entries (): Iterable<StoredEntry<V>> {
    return [...this.state.live.entries()].map(([, e]) => e)
  }

  size (): number {
    return this.state.live.size
  }

  async sync (): Promise<void> {
    await Promise.all(this.channel.peers().map(async id => { await this.syncWith(id) }))
  }

  async room (): Promise<void> {
    await this.channel.room()
  }

  stats (): BackendStats {
    return { ...this.counts, tombstones: this.state.tombstones.size, droppedAll: 0, channel: this.channel.stats() }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.offReconnect()
    clearInterval(this.collector)
    if (this.rounds !== null) clearTimeout(this.rounds)
    await this.channel.close()
  }

  private publish (u: CacheUpdate): void {
    if (!this.closed) this.channel.publish(encodeUpdate(u))
  }

  private onGossip (m: ChannelMessage): void {
    let u: CacheUpdate
    try {
      u = decodeUpdate(m.payload)
      if (u.op === 'invalidate' || u.op === 'invalidate-all') throw new Error('an invalidation-mode update on a replicated cache')
      if (u.hlc.node !== m.publisher) throw new Error(`a write stamped by ${u.hlc.node} published by ${m.publisher}`)
    } catch (err) {
      this.counts.rejected++
      this.ctx.log.warn({ publisher: m.publisher, ...errorFields(err) }, 'dropping a cache update')
      return
    }
    this.counts.updatesReceived++
    if (u.op === 'clear') {
      if (!this.admit(u.hlc)) return
      const removed = this.state.clear(u.hlc)
      this.ctx.sink.invalidated(null)
      for (const e of removed) this.ctx.sink.changed(e.key, 'delete', undefined, 'remote')
      return
    }
    if (this.applyEntry({ key: u.key, value: u.op === 'set' ? u.value : null, hlc: u.hlc }) === 'older') this.counts.staleUpdates++
  }

  /** Checks a remote timestamp against this node's clock and takes it in. */
  private admit (hlc: Hlc): boolean {
    if (hlc.ms > this.ctx.host.clock() + this.ctx.maxClockSkewMs) {
      this.counts.rejected++
      this.ctx.log.warn({ node: hlc.node, aheadMs: hlc.ms - this.ctx.host.clock() }, 'refusing a cache write stamped too far ahead')
      return false
    }
    this.clock.observe(hlc)
    return true
  }

  /** Entries an anti-entropy exchange brought: those that won here are counted as repaired. */
  private repair (entries: readonly WireEntry[]): void {
    for (const e of entries) if (this.applyEntry(e) === 'applied') this.counts.repaired++
  }

  /**
   * Applies one remote version (gossip or anti-entropy): 'applied' if it
   * won, 'held' if this node has that very version already (anti-entropy
   * and gossip both brought it), 'older' if it lost or was refused.
   */
  private applyEntry (e: WireEntry): 'applied' | 'held' | 'older' {
    if (!this.admit(e.hlc)) return 'older'
    const { sink } = this.ctx
    const id = sink.idOf(e.key)
    if (!this.state.wins(id, e.hlc)) {
      const held = this.state.version(id)
      return held !== null && compareHlc(held, e.hlc) === 0 ? 'held' : 'older'
    }
    let key: unknown
    let value: V | undefined
    try {
      key = sink.decodeKey(e.key)
      value = e.value === null ? undefined : sink.decodeValue(e.value)
    } catch (err) {
      this.counts.rejected++
      this.ctx.log.warn({ node: e.hlc.node, ...errorFields(err) }, 'dropping a cache write that does not decode')
      return 'older'
    }
    const had = this.state.live.peek(id) !== undefined
    if (e.value === null) this.state.delete(id, e.key, e.hlc)
    else this.state.set(id, key, e.key, value as V, e.hlc)
    sink.invalidated(id)
    const present = this.state.live.peek(id)
    if (present !== undefined) sink.changed(key, 'set', present.value, 'remote')
    else if (had) sink.changed(key, 'delete', undefined, 'remote')
    return 'applied'
  }

  private applyFloor (floor: Hlc | null): void {
    if (floor === null || !this.admit(floor)) return
    const removed = this.state.clear(floor)
    if (removed.length > 0) this.ctx.sink.invalidated(null)
    for (const e of removed) this.ctx.sink.changed(e.key, 'delete', undefined, 'remote')
  }

  /** This node's versions in `buckets`, whole buckets at a time within the byte budget. */
  private entriesIn (buckets: readonly number[]): { entries: WireEntry[], more: boolean } {
    const entries: WireEntry[] = []
    let bytes = 0
    for (const b of buckets) {
      const list: WireEntry[] = []
      let size = 0
      for (const id of this.state.versions.keysIn(b)) {
        const live = this.state.live.peek(id)
        const tomb = live === undefined ? this.state.tombstones.get(id) : undefined
        let e: WireEntry
        if (live !== undefined && live.hlc !== null) e = { key: this.ctx.sink.keyBytesOf(id), value: this.ctx.sink.encodeValue(live.value), hlc: live.hlc }
        else if (tomb !== undefined) e = { key: this.ctx.sink.keyBytesOf(id), value: null, hlc: tomb.hlc }
        else continue
        list.push(e)
        size += e.key.byteLength + (e.value?.byteLength ?? 0) + 32
      }
      // At least one bucket per round, so an exchange always progresses.
      if (entries.length > 0 && bytes + size > SYNC_BUDGET_BYTES) return { entries, more: true }
      entries.push(...list)
      bytes += size
    }
    return { entries, more: false }
  }

  private async serveSync (body: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new ClusterStoppedError(`cache ${this.ctx.name} is closed`)
    const req = decodeSyncRequest(body)
    this.applyFloor(req.floor)
    const buckets = differingBuckets(req.digest, this.state.digest())
    const { entries, more } = this.entriesIn(buckets)
    return encodeSyncResponse({ floor: this.state.floor, buckets, entries, more })
  }

  private async servePush (body: Uint8Array, from: string): Promise<Uint8Array> {
    if (this.closed) throw new ClusterStoppedError(`cache ${this.ctx.name} is closed`)
    const push = decodeSyncPush(body)
    this.applyFloor(push.floor)
    this.repair(push.entries)
    this.ctx.log.debug({ from, entries: push.entries.length }, 'anti-entropy push applied')
    return new Uint8Array(0)
  }

  /**
   * The periodic exchange, at a random point between half and one and a
   * half intervals: nodes started together would otherwise all exchange at
   * the same moment.
   */
  private nextRound (): void {
    const delay = this.ctx.antiEntropyIntervalMs * (0.5 + Math.random())
    this.rounds = setTimeout(() => {
      if (this.closed) return
      const peers = this.channel.peers()
      if (peers.length > 0) this.syncSoon(peers[Math.floor(Math.random() * peers.length)])
      this.nextRound()
    }, delay).unref()
  }

  /** Starts an exchange in the background (failures are counted and logged by exchange()). */
  private syncSoon (nodeId: string): void {
    this.syncWith(nodeId).catch(() => {})
  }

  /** One exchange with `nodeId` at a time: a trigger during one makes it run once more when it ends. */
  private async syncWith (nodeId: string): Promise<void> {
    if (this.closed || nodeId === this.ctx.host.nodeId) return
    const running = this.syncing.get(nodeId)
    if (running !== undefined) {
      running.again = true
      return
    }
    const run = { again: true }
    this.syncing.set(nodeId, run)
    try {
      while (run.again && !this.closed) {
        run.again = false
        const started = performance.now()
        await this.exchange(nodeId)
        // Under a flood of gaps, exchanges (each a pass over every entry on both sides) must not follow back to back.
        if (run.again) await new Promise(resolve => setTimeout(resolve, Math.max(0, started + MIN_SYNC_SPACING_MS - performance.now())).unref())
      }
    } finally {
      this.syncing.delete(nodeId)
    }
  }

  /** Rounds of digest, their entries, our entries, until the digests agree. */
  private async exchange (nodeId: string): Promise<void> {
    const { calls } = this.ctx.host
    const opts = { timeoutMs: this.ctx.syncTimeoutMs }
    try {
      for (let round = 0; round < MAX_SYNC_ROUNDS && !this.closed; round++) {
        const req = encodeSyncRequest({ digest: this.state.digest(), floor: this.state.floor })
        const res = decodeSyncResponse(await calls.call(nodeId, `${this.ctx.topic}/sync`, req, opts))
        this.applyFloor(res.floor)
        this.repair(res.entries)
        const mine = this.entriesIn(res.buckets)
        if (mine.entries.length > 0) {
          await calls.call(nodeId, `${this.ctx.topic}/push`, encodeSyncPush({ floor: this.state.floor, entries: mine.entries }), opts)
        }
        if (!res.more && !mine.more) break
      }
      this.counts.syncs++
    } catch (err) {
      if (this.closed) return
      this.counts.syncFailures++
      this.ctx.log.debug({ peer: nodeId, ...errorFields(err) }, 'anti-entropy exchange failed; it runs again when the member reconnects')
    }
  }
}
