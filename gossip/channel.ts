/**
 * A gossip channel: one gossipsub topic carrying payloads from many
 * publishers, each numbered by its publisher (1, 2, 3, ... per start of the
 * publishing node), for the services built on top (cache replication,
 * events) that need per-publisher order and to know when something was
 * missed.
 *
 * Publishing batches small payloads into one gossipsub message. A payload
 * published when no batch left in the last `batchDelayMs` goes at the end
 * of the current turn (with whatever else this turn publishes), so a lone
 * update waits for nothing; under a stream of updates a batch leaves at
 * most every `batchDelayMs`, or once it reaches `batchBytes`, so the
 * message rate stays bounded while the update rate grows. gossipsub has
 * no backpressure: a batch waits for the mesh's send window (a member's
 * stream backed up), and `room()` tells publishers when too much waits.
 * Receiving delivers each publisher's payloads in sequence order exactly
 * once: duplicates are dropped, a batch that arrives ahead of a missing one
 * is held for `reorderWindowMs`, and if the missing one has not come by then
 * a `gap` event names the missing range and delivery moves on. Repairing a
 * gap is the caller's business (e.g. from the publisher's buffer).
 *
 * Only messages relayed by live members are accepted (a gossipsub topic
 * validator), and every message is decoded with limits before use. Messages
 * are unsigned (see the gossipsub options in node.ts): the connection is
 * already authenticated by the private network and noise, so the publisher
 * field is trusted as far as the members themselves are.
 */
import './polyfill.js'
import { TopicValidatorResult, type Message as PubsubMessage, type SubscriptionChangeData } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { MAX_BATCH_ITEMS, MAX_BATCH_STARTS, MAX_CHANNEL_MESSAGE_BYTES, decodeChannelBatch, encodeChannelBatch, type ChannelBatch } from './channel-codec.js'
import { InvalidArgumentError, NotStartedError } from './errors.js'
import { errorFields, type Logger } from './logger.js'
import type { MeshNode } from './node.js'

export interface ChannelOptions {
  /** Largest single payload. Default 256 KiB. */
  readonly maxPayloadBytes?: number
  /** Flush a batch once its payloads reach this many bytes. Default 16 KiB. */
  readonly batchBytes?: number
  /** At most one batch per this long, unless batches fill up (see above). Default 2 ms. */
  readonly batchDelayMs?: number
  /** How long a batch that skipped ahead waits for the missing ones. Default 100 ms. */
  readonly reorderWindowMs?: number
}

export interface ChannelMessage {
  /** Node id of the publisher. */
  readonly publisher: string
  readonly seq: number
  readonly payload: Uint8Array
  /**
   * It came over the publisher's own connection, whose peer is
   * authenticated (noise) and admitted under that node id, so the publisher
   * field is proven. Members do not relay (node.ts), so this is the rule;
   * false means another member sent it, claiming `publisher`.
   */
  readonly direct: boolean
}

/** Sequence numbers `from`..`to` (inclusive) of `publisher` will not be delivered. */
export interface ChannelGap {
  readonly publisher: string
  readonly from: number
  readonly to: number
}

export interface ChannelEvents {
  message: [ChannelMessage]
  gap: [ChannelGap]
}

export interface ChannelStats {
  readonly published: number
  readonly batchesSent: number
  readonly delivered: number
  readonly duplicates: number
  readonly gaps: number
  readonly badMessages: number
  readonly notMember: number
}

/** Bytes of batches waiting for the send window above which room() holds publishers back. */
const MAX_QUEUED_BYTES = 1024 * 1024
/** Batches held per publisher while waiting for a missing one; more forces the gap at once. */
const MAX_HELD_BATCHES = 1024
/** How long the batches of a publisher tell a newly subscribed receiver where its share starts. */
const ANNOUNCE_START_MS = 10_000

interface PublisherState {
  readonly incarnation: string
  /** The next sequence number to deliver. */
  next: number
  readonly held: Map<number, ChannelBatch>
  timer: NodeJS.Timeout | null
}

/** An incarnation sorts by start time, so a late message from a previous start is recognised as stale. */
function newIncarnation (): string {
  return `${Date.now().toString(36).padStart(10, '0')}.${randomBytes(6).toString('hex')}`
}

function limit (name: string, v: number | undefined, dflt: number, max: number): number {
  if (v === undefined) return dflt
  if (!Number.isInteger(v) || v <= 0 || v > max) throw new InvalidArgumentError(`${name} must be an integer in 1..${max}, got ${v}`)
  return v
}

export class GossipChannel extends EventEmitter<ChannelEvents> {
  readonly topic: string
  private readonly mesh: MeshNode
  private readonly log: Logger
  private readonly maxPayloadBytes: number
  private readonly batchBytes: number
  private readonly batchDelayMs: number
  private readonly reorderWindowMs: number
  private readonly incarnation = newIncarnation()
  private seq = 0
  /** Last sequence number handed to gossipsub. */
  private handed = 0
  /**
   * Peers (by peer id) seen subscribed, with the join time of the member then
   * (null before its handshake): gossipsub forgets a peer whose stream broke
   * while its connection stays up, and the repairs built on `peers()` must not.
   */
  private readonly seenSubscribed = new Map<string, number | null>()
  /** Peers (by peer id) that subscribed recently: their first sequence number, told until `until`. */
  private readonly starts = new Map<string, { seq: number, until: number }>()
  private pending: Uint8Array[] = []
  private pendingBytes = 0
  private flushTimer: NodeJS.Timeout | null = null
  private flushImmediate: NodeJS.Immediate | null = null
  private lastFlushAt = -Infinity
  private publishing: Promise<void> = Promise.resolve()
  /** Bytes of batches waiting in `publishing` to be handed to gossipsub. */
  private queuedBytes = 0
  /** Publishers waiting for queuedBytes to fall (see room). */
  private roomWaiters: Array<() => void> = []
  private readonly publishers = new Map<string, PublisherState>()
  private readonly decoded = new WeakMap<object, { batch: ChannelBatch, from: string | null }>()
  /** Batches that came over their publisher's own connection (see ChannelMessage.direct). */
  private readonly direct = new WeakSet<ChannelBatch>()
  private closed = false
  private readonly counts = { published: 0, batchesSent: 0, delivered: 0, duplicates: 0, gaps: 0, badMessages: 0, notMember: 0 }
  private readonly onPubsubMessage = (evt: CustomEvent<PubsubMessage>): void => { this.onMessage(evt.detail) }
  private readonly onSubscriptionChange = (evt: CustomEvent<SubscriptionChangeData>): void => {
    // From now on our publishes reach this peer (gossipsub floods a
    // publisher's own messages to every subscriber it knows of).
    const peer = evt.detail.peerId.toString()
    for (const s of evt.detail.subscriptions) {
      if (s.topic !== this.topic) continue
      if (!s.subscribe) {
        this.seenSubscribed.delete(peer)
        continue
      }
      this.starts.set(peer, { seq: this.handed + 1, until: Date.now() + ANNOUNCE_START_MS })
      this.seenSubscribed.set(peer, this.mesh.membership.aliveByPeer(peer)?.joinedAt ?? null)
    }
  }

  constructor (mesh: MeshNode, topic: string, opts: ChannelOptions = {}) {
    super()
    if (typeof topic !== 'string' || topic.length === 0 || topic.length > 256) throw new InvalidArgumentError('a channel topic must be a non-empty string of at most 256 characters')
    if (mesh.libp2p.status !== 'started') throw new NotStartedError('the mesh node is not started')
    this.mesh = mesh
    this.topic = topic
    this.log = mesh.log.child({ module: 'channel', topic })
    // A batch is at most batchBytes plus one payload, and must fit in one gossipsub message.
    this.maxPayloadBytes = limit('maxPayloadBytes', opts.maxPayloadBytes, 256 * 1024, MAX_CHANNEL_MESSAGE_BYTES / 2)
    this.batchBytes = limit('batchBytes', opts.batchBytes, 16 * 1024, MAX_CHANNEL_MESSAGE_BYTES / 4)
    this.batchDelayMs = limit('batchDelayMs', opts.batchDelayMs, 2, 60_000)
    this.reorderWindowMs = limit('reorderWindowMs', opts.reorderWindowMs, 100, 60_000)
    const pubsub = mesh.libp2p.services.pubsub
    pubsub.topicValidators.set(topic, (peer, msg) => {
      const result = this.validate(peer, msg)
      return mesh.turn.overdue() ? mesh.turn.pause().then(() => result) : result
    })
    pubsub.addEventListener('message', this.onPubsubMessage)
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange)
    pubsub.subscribe(topic)
  }

  /**
   * Queues a payload and returns its sequence number. The payload is sent
   * with the next batch; it is not delivered to this node's own listeners.
   */
  publish (payload: Uint8Array): number {
    if (this.closed) throw new NotStartedError(`channel ${this.topic} is closed`)
    if (!(payload instanceof Uint8Array)) throw new InvalidArgumentError('a payload must be a Uint8Array')
    if (payload.byteLength > this.maxPayloadBytes) throw new InvalidArgumentError(`payload of ${payload.byteLength} bytes exceeds the channel limit of ${this.maxPayloadBytes}`)
    this.pending.push(payload)
    this.pendingBytes += payload.byteLength
    this.counts.published++
    const seq = ++this.seq
    if (this.pendingBytes >= this.batchBytes || this.pending.length >= MAX_BATCH_ITEMS) this.flushNow()
    else if (this.flushTimer === null && this.flushImmediate === null) {
      const wait = this.lastFlushAt + this.batchDelayMs - performance.now()
      if (wait <= 0) this.flushImmediate = setImmediate(() => { this.flushNow() })
      else this.flushTimer = setTimeout(() => { this.flushNow() }, wait)
    }
    return seq
  }

  /**
   * Resolves at once unless more than MAX_QUEUED_BYTES of this channel's
   * batches wait to be handed to gossipsub (members are slower than this
   * node publishes: send-window.ts), then once they have fallen below it.
   * A publisher that awaits it between publishes is held to what the
   * members take, with bounded memory, instead of overflowing and losing
   * updates.
   */
  async room (): Promise<void> {
    if (this.queuedBytes + this.pendingBytes <= MAX_QUEUED_BYTES || this.closed) return
    await new Promise<void>(resolve => { this.roomWaiters.push(resolve) })
  }

  /** Sends what is queued and resolves when every batch so far has been handed to gossipsub. */
  async flush (): Promise<void> {
    this.flushNow()
    await this.publishing
  }

  /**
   * Node ids of live members subscribed to this channel: those gossipsub
   * lists now, and those seen subscribing since they (last) joined, until
   * they unsubscribe, fail or leave. A member whose gossip link broke
   * silently (gossip-links.ts) drops out of gossipsub's list, but stays
   * here, so the repairs that ask `peers()` (head checks, anti-entropy)
   * still reach it by direct calls.
   */
  peers (): string[] {
    const { membership } = this.mesh
    for (const p of this.mesh.libp2p.services.pubsub.getSubscribers(this.topic)) {
      const peer = p.toString()
      this.seenSubscribed.set(peer, membership.aliveByPeer(peer)?.joinedAt ?? null)
    }
    const ids: string[] = []
    for (const [peer, joinedAt] of this.seenSubscribed) {
      const m = membership.aliveByPeer(peer)
      if (m === undefined) {
        // Down since: forgotten (a subscription seen before the handshake waits while the peer is still connected).
        if (joinedAt !== null || this.mesh.libp2p.getConnections().every(c => c.remotePeer.toString() !== peer)) this.seenSubscribed.delete(peer)
        continue
      }
      if (joinedAt !== null && joinedAt !== m.joinedAt) {
        // It failed or left, and joined again: only what it says (or gossipsub lists) from now on counts.
        this.seenSubscribed.delete(peer)
        continue
      }
      if (joinedAt === null) this.seenSubscribed.set(peer, m.joinedAt)
      ids.push(m.nodeId)
    }
    return ids.sort()
  }

  stats (): ChannelStats {
    return { ...this.counts }
  }

  /** Flushes, then unsubscribes. */
  async close (): Promise<void> {
    if (this.closed) return
    await this.flush()
    this.closed = true
    this.wakeRoomWaiters()
    for (const st of this.publishers.values()) if (st.timer !== null) clearTimeout(st.timer)
    const pubsub = this.mesh.libp2p.services.pubsub
    pubsub.removeEventListener('message', this.onPubsubMessage)
    pubsub.removeEventListener('subscription-change', this.onSubscriptionChange)
    if (pubsub.topicValidators.get(this.topic) !== undefined) pubsub.topicValidators.delete(this.topic)
    if (this.mesh.libp2p.status === 'started') pubsub.unsubscribe(this.topic)
  }

  private flushNow (): void {
    this.cancelFlush()
    if (this.pending.length === 0) return
    this.lastFlushAt = performance.now()
    const items = this.pending
    const bytes = this.pendingBytes
    const firstSeq = this.seq - items.length + 1
    const last = this.seq
    this.pending = []
    this.pendingBytes = 0
    this.queuedBytes += bytes
    const pubsub = this.mesh.libp2p.services.pubsub
    // One publish at a time, so batches leave in sequence order.
    this.publishing = this.publishing.then(async () => {
      await this.mesh.sendWindow.open()
      const batch: ChannelBatch = { publisher: this.mesh.nodeId, incarnation: this.incarnation, firstSeq, starts: this.startsToTell(firstSeq), items }
      const data = encodeChannelBatch(batch)
      this.handed = last
      this.queuedBytes -= bytes
      this.wakeRoomWaiters()
      try {
        await pubsub.publish(this.topic, data)
        this.counts.batchesSent++
      } catch (err) {
        // Receivers will see the hole as a gap.
        this.log.warn({ firstSeq: batch.firstSeq, items: items.length, ...errorFields(err) }, 'publish failed')
      }
    })
  }

  private wakeRoomWaiters (): void {
    if (this.roomWaiters.length === 0 || (this.queuedBytes + this.pendingBytes > MAX_QUEUED_BYTES && !this.closed)) return
    const waiters = this.roomWaiters
    this.roomWaiters = []
    for (const w of waiters) w()
  }

  private cancelFlush (): void {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer)
    if (this.flushImmediate !== null) clearImmediate(this.flushImmediate)
    this.flushTimer = null
    this.flushImmediate = null
  }

  /** The starts of receivers that subscribed recently, by node id (peers not yet admitted wait for a later batch). */
  private startsToTell (firstSeq: number): Array<[string, number]> {
    const now = Date.now()
    const out: Array<[string, number]> = []
    for (const [peer, s] of this.starts) {
      if (s.until < now) {
        this.starts.delete(peer)
        continue
      }
      const node = this.mesh.membership.nodeIdOfPeer(peer)
      if (node !== null && out.length < MAX_BATCH_STARTS) out.push([node, Math.min(s.seq, firstSeq)])
    }
    return out
  }

  private validate (peer: PeerId, msg: PubsubMessage): TopicValidatorResult {
    const peerId = peer.toString()
    const from = this.mesh.membership.nodeIdOfPeer(peerId)
    if (from === null) {
      this.counts.notMember++
      return TopicValidatorResult.Ignore
    }
    try {
      this.decoded.set(msg, { batch: decodeChannelBatch(msg.data), from })
      return TopicValidatorResult.Accept
    } catch (err) {
      this.counts.badMessages++
      this.log.warn({ peerId, ...errorFields(err) }, 'rejecting a malformed channel message')
      return TopicValidatorResult.Reject
    }
  }

  private onMessage (msg: PubsubMessage): void {
    if (msg.topic !== this.topic || this.closed) return
    const validated = this.decoded.get(msg)
    let batch = validated?.batch
    if (batch === undefined) {
      try {
        batch = decodeChannelBatch(msg.data)
      } catch {
        this.counts.badMessages++
        return
      }
    }
    if (batch.publisher === this.mesh.nodeId && batch.incarnation === this.incarnation) return
    if (validated?.from === batch.publisher) this.direct.add(batch)
    this.receive(batch)
  }

  private receive (b: ChannelBatch): void {
    let st = this.publishers.get(b.publisher)
    if (st !== undefined && b.incarnation < st.incarnation) {
      this.counts.duplicates += b.items.length
      return
    }
    if (st === undefined || b.incarnation !== st.incarnation) {
      // First word from this start of the publisher. If we heard its previous
      // start, we were listening when this one began: its sequence is ours
      // from 1, and a first batch lost on the way is a gap like any other.
      // Never heard of it: what it sent before it knew we listen is not ours.
      // It tells a receiver that subscribed recently where its share begins;
      // otherwise this batch sets the baseline.
      if (st?.timer != null) clearTimeout(st.timer)
      const told = b.starts?.find(([receiver]) => receiver === this.mesh.nodeId)?.[1]
      st = { incarnation: b.incarnation, next: st === undefined ? told ?? b.firstSeq : 1, held: new Map(), timer: null }
      this.publishers.set(b.publisher, st)
    }
    const last = b.firstSeq + b.items.length - 1
    if (last < st.next || st.held.has(b.firstSeq)) {
      this.counts.duplicates += b.items.length
      return
    }
    if (b.firstSeq > st.next) {
      st.held.set(b.firstSeq, b)
      if (st.held.size > MAX_HELD_BATCHES) this.skipToHeld(b.publisher, st)
      else if (st.timer === null) {
        const state = st
        st.timer = setTimeout(() => { state.timer = null; this.skipToHeld(b.publisher, state) }, this.reorderWindowMs)
      }
      return
    }
    this.deliver(b, st)
    this.drainHeld(b.publisher, st)
  }

  private deliver (b: ChannelBatch, st: PublisherState): void {
    const skip = st.next - b.firstSeq
    if (skip > 0) this.counts.duplicates += skip
    for (let i = Math.max(0, skip); i < b.items.length; i++) {
      this.counts.delivered++
      st.next = b.firstSeq + i + 1
      this.emit('message', { publisher: b.publisher, seq: b.firstSeq + i, payload: b.items[i], direct: this.direct.has(b) })
    }
  }

  private drainHeld (publisher: string, st: PublisherState): void {
    let progressed = true
    while (progressed && st.held.size > 0) {
      progressed = false
      for (const [first, b] of st.held) {
        if (first + b.items.length - 1 < st.next) {
          st.held.delete(first)
          this.counts.duplicates += b.items.length
        } else if (first <= st.next) {
          st.held.delete(first)
          this.deliver(b, st)
          progressed = true
        }
      }
    }
    if (st.held.size === 0 && st.timer !== null) {
      clearTimeout(st.timer)
      st.timer = null
    } else if (st.held.size > 0 && st.timer === null) {
      st.timer = setTimeout(() => { st.timer = null; this.skipToHeld(publisher, st) }, this.reorderWindowMs)
    }
  }

  /** The wait is over: report the hole before the earliest held batch and deliver from there. */
  private skipToHeld (publisher: string, st: PublisherState): void {
    if (this.closed || st.held.size === 0 || this.publishers.get(publisher) !== st) return
    const first = Math.min(...st.held.keys())
    if (first > st.next) {
      const gap: ChannelGap = { publisher, from: st.next, to: first - 1 }
      this.counts.gaps++
      this.log.warn({ ...gap }, 'gap in a publisher\'s sequence')
      st.next = first
      this.emit('gap', gap)
    }
    this.drainHeld(publisher, st)
  }
}
