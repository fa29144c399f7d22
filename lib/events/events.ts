/**
 * The cluster's event bus (`cluster.events`): publish on a topic, subscribe
 * with a pattern. Every node that subscribes gets every event at least
 * once, deduplicated, in per-publisher order, and a node's own events reach
 * its own subscribers too.
 *
 * Events travel on one gossip channel (batched with whatever else is being
 * published at that moment), each signed by its publisher (authenticity.ts).
 * A receiver that finds a publisher's sequence skipping ahead fetches the
 * missing events from the publisher's bounded buffer over a direct call
 * before going on (inbound.ts). When a member subscribes or (re)connects,
 * this node asks for its last sequence number: events after it are this
 * node's to get, and what it missed while they were apart is fetched. It
 * asks every member again every `headCheckMs` (every one seen subscribed,
 * even behind a gossip link that went silent: channel.ts), which finds a
 * lost last event (no later one reveals it). Only while this node has a
 * subscriber: a lost event matters to nobody else here, and the checks were
 * a third of an idle cluster's traffic. What the buffer no longer holds is
 * reported as a `gap` event: never left behind silently.
 *
 * `{ ordered: true }` events go through the Raft log instead, for one total
 * order on every node: the Cluster passes `orderedPublish` (which appends
 * to the log) and calls `deliverOrdered` for each one applied.
 */
import type { PrivateKey } from '@libp2p/interface'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { Packr } from 'msgpackr'
import type { ChannelMessage, GossipChannel } from '../../gossip/channel.js'
import { errorFields, type Logger } from '../../gossip/logger.js'
import { ClusterStoppedError, InvalidArgumentError } from '../errors.js'
import { onPeerReconnect, type ServiceHost } from '../service-host.js'
import { EventAuthenticity } from './authenticity.js'
import { decodeBody, decodeFetchRequest, decodeFetchResponse, decodeHead, decodeSignedEvent, encodeBody, encodeFetchRequest, encodeFetchResponse, encodeHead, encodeSignedEvent, type EventBody, type Head } from './event-codec.js'
import { EventTooLargeError } from './errors.js'
import { InboundOrder } from './inbound.js'
import { PublisherBuffer } from './publisher-buffer.js'
import { withRetries } from './retry.js'
import { Subscription, type ClusterEvent, type EventHandler } from './subscription.js'
import { checkTopic, compilePattern } from './topic-pattern.js'

export type { ClusterEvent, EventHandler } from './subscription.js'

export interface EventsOptions {
  /** This node's peer key (gossip/peer-key.ts), which signs its events. */
  readonly privateKey: PrivateKey
  /** Appends an ordered event to the Raft log and resolves with its index; without it `{ ordered: true }` is refused. */
  readonly orderedPublish?: (topic: string, payload: Uint8Array) => Promise<number>
  /** The gossip topic (and RPC method prefix). Default `raftmesh/events`. */
  readonly topic?: string
  /** Largest event (payload and topic), msgpack-encoded. Default 64 KiB, at most 128 KiB. */
  readonly maxPayloadBytes?: number
  /** Own events kept for others to fetch. Defaults 10,000 events and 16 MiB. */
  readonly bufferEvents?: number
  readonly bufferBytes?: number
  /** Events waiting for one subscriber's handler before further ones are dropped for it. Default 1,000. */
  readonly maxQueue?: number
  /** Deadline of a fetch from a publisher. Default 5 s. */
  readonly fetchTimeoutMs?: number
  /**
   * How often to ask every member for its last sequence number. A lost
   * gossip message is found by the next event from its publisher; a lost
   * last event has no next one, so this is how it is found. Default 2 s.
   * Asked only while this node has a subscription.
   */
  readonly headCheckMs?: number
}

/** Events `from`..`to` of `publisher` are lost for this node. */
export interface EventGap {
  readonly publisher: string
  readonly from: number
  readonly to: number
}

/** A subscriber's queue was full: this event was dropped for it. */
export interface EventOverflow {
  readonly pattern: string
  readonly topic: string
  readonly publisher: string
  readonly seq: number
}

export interface EventBusEvents {
  gap: [EventGap]
  overflow: [EventOverflow]
}

export interface EventStats {
  /** Other publishers whose sequence this node follows (known from their first event or their answer on connecting). */
  readonly publishers: number
  readonly published: number
  /** Events accepted from others (each once), before fan-out to subscribers. */
  readonly received: number
  readonly duplicates: number
  /** Events fetched from a publisher's buffer after a gap. */
  readonly repaired: number
  /** Events reported lost (`gap`). */
  readonly lost: number
  /** Events whose signature did not match the publisher they claimed. */
  readonly forged: number
  /** Events from a node this one has no key for (never a member). */
  readonly unknownPublisher: number
  readonly malformed: number
  /** Events dropped for a subscriber whose queue was full. */
  readonly overflowed: number
  readonly handlerErrors: number
}

/** How long a member's subscription counts as new: its first head call comes well within this. */
const JOINED_FOR_MS = 30_000
/** Tries of the head call on a (re)connection, the first wait, doubling (about 3 s in all). */
const HEAD_ATTEMPTS = 6
const HEAD_RETRY_MS = 100
/** Budget of one fetch response. */
const FETCH_BUDGET_BYTES = 512 * 1024
const MAX_PAYLOAD_LIMIT = 128 * 1024

function option (name: string, v: number | undefined, dflt: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return dflt
  if (!Number.isInteger(v) || v <= 0 || v > max) throw new InvalidArgumentError(`${name} must be an integer in 1..${max}, got ${v}`)
  return v
}

/** Sorts by start time, so a newer start of a publisher is recognised (as the channel's incarnations do). */
function newIncarnation (): string {
  return `${Date.now().toString(36).padStart(10, '0')}.${randomBytes(6).toString('hex')}`
}

export class EventBus extends EventEmitter<EventBusEvents> {
  private readonly host: ServiceHost
  private readonly topic: string
  private readonly log: Logger
  private readonly channel: GossipChannel
  private readonly auth: EventAuthenticity
  private readonly orderedPublish: ((topic: string, payload: Uint8Array) => Promise<number>) | undefined
  private readonly buffer: PublisherBuffer
  private readonly inbound: InboundOrder
  private readonly subscriptions = new Set<Subscription>()
  private readonly packr = new Packr({ useRecords: false, mapsAsObjects: true })
  private readonly incarnation = newIncarnation()
  private readonly maxPayloadBytes: number
  private readonly maxQueue: number
  private readonly fetchTimeoutMs: number
  private readonly offReconnect: () => void
  private readonly headCheckMs: number
  private headCheck: NodeJS.Timeout | null = null
  /** Members that (re)subscribed lately: our last sequence number then. */
  private readonly joined = new Map<string, { sent: number, at: number }>()
  private seq = 0
  /** The last sequence number in the buffer (signed and sent); what `head` reports. */
  private sent = 0
  private leaving: Promise<void> | null = null
  private closed = false
  private readonly counts = { published: 0, received: 0, lost: 0, forged: 0, unknownPublisher: 0, malformed: 0, overflowed: 0 }

  constructor (host: ServiceHost, opts: EventsOptions) {
    super()
    this.host = host
    this.topic = opts.topic ?? 'raftmesh/events'
    this.log = host.logger.child({ module: 'events' })
    this.maxPayloadBytes = option('maxPayloadBytes', opts.maxPayloadBytes, 64 * 1024, MAX_PAYLOAD_LIMIT)
    this.maxQueue = option('maxQueue', opts.maxQueue, 1000)
    this.fetchTimeoutMs = option('fetchTimeoutMs', opts.fetchTimeoutMs, 5000)
    this.buffer = new PublisherBuffer(option('bufferEvents', opts.bufferEvents, 10_000), option('bufferBytes', opts.bufferBytes, 16 * 1024 * 1024))
    this.orderedPublish = opts.orderedPublish
    this.auth = new EventAuthenticity(host.nodeId, opts.privateKey, host.mesh.membership)
    this.inbound = new InboundOrder({
      fetch: async (publisher, req) => decodeFetchResponse(await host.calls.call(publisher, `${this.topic}/fetch`, encodeFetchRequest(req), { timeoutMs: this.fetchTimeoutMs })),
      // Fetched from the publisher itself, over its own connection.
      open: async (publisher, event) => await this.authenticate(publisher, event, true),
      deliver: (publisher, body) => {
        this.counts.received++
        this.dispatch({ topic: body.topic, payload: body.payload, publisher, seq: body.seq })
      },
      gap: (publisher, from, to) => {
        this.counts.lost += to - from + 1
        this.log.warn({ publisher, from, to }, 'events lost: no longer in their publisher\'s buffer')
        this.emit('gap', { publisher, from, to })
      },
      log: this.log
    })
    this.channel = host.channel(this.topic)
    this.channel.on('message', m => { this.onGossip(m) })
    host.calls.handle(`${this.topic}/fetch`, async body => await this.serveFetch(body))
    host.calls.handle(`${this.topic}/head`, async (_body, ctx) => encodeHead({ incarnation: this.incarnation, seq: this.sent, since: this.subscribedSince(ctx.from) }))
    this.offReconnect = onPeerReconnect(host.mesh, this.topic, id => {
      this.joined.set(id, { sent: this.sent, at: Date.now() })
      this.catchUp(id)
    })
    for (const id of this.channel.peers()) this.catchUp(id)
    this.headCheckMs = option('headCheckMs', opts.headCheckMs, 2000, 3_600_000)
  }

  /**
   * Publishes an event. Resolves with its sequence number once it has left
   * this node (handed to gossipsub); this node's own subscribers have it
   * queued by then. Rejects with EventTooLargeError over `maxPayloadBytes`,
   * InvalidArgumentError for a bad topic.
   *
   * `{ ordered: true }`: through the Raft log, one total order on every
   * node; resolves with the log index once appended (needs the Cluster's
   * `orderedPublish`).
   */
  async publish (topic: string, payload: unknown, opts: { ordered?: boolean } = {}): Promise<{ seq: number }> {
    this.ensureOpen()
    checkTopic(topic)
    if (opts.ordered === true) {
      if (this.orderedPublish === undefined) throw new InvalidArgumentError('ordered events go through the Raft log, which this event bus was not given (orderedPublish)')
      const bytes = this.packr.pack(payload)
      if (bytes.byteLength > this.maxPayloadBytes) throw new EventTooLargeError(topic, bytes.byteLength, this.maxPayloadBytes)
      return { seq: await this.orderedPublish(topic, bytes) }
    }
    const seq = ++this.seq
    const body = encodeBody({ incarnation: this.incarnation, seq, topic, payload })
    if (body.byteLength > this.maxPayloadBytes) {
      this.seq--
      throw new EventTooLargeError(topic, body.byteLength, this.maxPayloadBytes)
    }
    const event = encodeSignedEvent({ body, signature: this.auth.sign(body) })
    this.buffer.push(seq, event)
    this.sent = seq
    this.channel.publish(event)
    this.counts.published++
    this.dispatch({ topic, payload, publisher: this.host.nodeId, seq })
    await this.left()
    return { seq }
  }

  /**
   * Calls `handler` for every event whose topic matches `pattern` (`*` one
   * word, `#` any number: `encounter.*`, `encounter.#`), one at a time, in
   * per-publisher order. Returns the unsubscribe.
   */
  subscribe<T = unknown> (pattern: string, handler: EventHandler<T>): () => void {
    this.ensureOpen()
    if (typeof handler !== 'function') throw new InvalidArgumentError('a subscription needs a handler function')
    const sub = new Subscription(pattern, compilePattern(pattern), handler as EventHandler, this.maxQueue, this.log)
    this.subscriptions.add(sub)
    this.checkHeads()
    return () => {
      sub.closed = true
      this.subscriptions.delete(sub)
      this.checkHeads()
    }
  }

  /** Runs the periodic head check while there is a subscriber (see the top of the file). */
  private checkHeads (): void {
    const wanted = !this.closed && this.subscriptions.size > 0
    if (wanted && this.headCheck === null) {
      this.headCheck = setInterval(() => { for (const id of this.channel.peers()) this.catchUp(id, 1) }, this.headCheckMs)
      this.headCheck.unref()
    } else if (!wanted && this.headCheck !== null) {
      clearInterval(this.headCheck)
      this.headCheck = null
    }
  }

  /**
   * Hands an ordered event, applied from the Raft log, to the subscribers;
   * the Cluster calls it on every node in log order. `payload` is the
   * msgpack bytes given to `orderedPublish`, `seq` the log index.
   */
  deliverOrdered (event: { topic: string, payload: Uint8Array, publisher: string, seq: number }): void {
    let payload: unknown
    try {
      payload = this.packr.unpack(event.payload)
    } catch (err) {
      this.counts.malformed++
      this.log.warn({ topic: event.topic, seq: event.seq, ...errorFields(err) }, 'dropping an ordered event that does not decode')
      return
    }
    this.dispatch({ topic: event.topic, payload, publisher: event.publisher, seq: event.seq })
  }

  stats (): EventStats {
    let handlerErrors = 0
    for (const s of this.subscriptions) handlerErrors += s.handlerErrors
    return { ...this.counts, publishers: this.inbound.publishers, duplicates: this.inbound.duplicates, repaired: this.inbound.repaired, handlerErrors }
  }

  /** Stops publishing and receiving; queued handler calls are dropped. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.checkHeads()
    this.offReconnect()
    for (const s of this.subscriptions) s.closed = true
    this.subscriptions.clear()
    await this.channel.close()
  }

  /** Resolves once what was published so far has been handed to gossipsub; one flush per turn of the event loop. */
  private async left (): Promise<void> {
    this.leaving ??= new Promise<void>(resolve => { setImmediate(resolve) }).then(async () => {
      this.leaving = null
      await this.channel.flush()
    })
    await this.leaving
  }

  private dispatch (event: ClusterEvent): void {
    for (const s of this.subscriptions) {
      if (!s.matches(event.topic) || s.offer(event)) continue
      this.counts.overflowed++
      this.emit('overflow', { pattern: s.pattern, topic: event.topic, publisher: event.publisher, seq: event.seq })
    }
  }

  private onGossip (m: ChannelMessage): void {
    this.inbound.receive(m.publisher, async () => await this.authenticate(m.publisher, m.payload, m.direct))
  }

  /**
   * Decodes and authenticates one event of `publisher`; null (counted,
   * logged) if it is not theirs or not valid. One that came over the
   * publisher's own authenticated connection (`direct`) is theirs: its
   * signature is checked only when another member passes it on, which
   * saves every receiver an Ed25519 verification (about 110 µs here) per
   * event.
   */
  private async authenticate (publisher: string, data: Uint8Array, direct: boolean): Promise<EventBody | null> {
    let body: EventBody
    try {
      const e = decodeSignedEvent(data)
      const verdict = direct ? 'authentic' : await this.auth.verify(publisher, e.body, e.signature)
      if (verdict !== 'authentic') {
        if (verdict === 'forged') this.counts.forged++
        else this.counts.unknownPublisher++
        this.log.warn({ publisher, verdict }, 'dropping an event its claimed publisher did not sign')
        return null
      }
      body = decodeBody(e.body)
    } catch (err) {
      this.counts.malformed++
      this.log.warn({ publisher, ...errorFields(err) }, 'dropping a malformed event')
      return null
    }
    return body
  }

  private async serveFetch (body: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new ClusterStoppedError('the event bus is closed')
    const req = decodeFetchRequest(body)
    // Events of another incarnation are not these: answer with ours and none.
    const events = req.incarnation === this.incarnation ? this.buffer.range(req.from, req.to, FETCH_BUDGET_BYTES) : []
    return encodeFetchResponse({ incarnation: this.incarnation, events })
  }

  /**
   * A member (re)connected or subscribed: learn its last sequence number,
   * and fetch what was missed. Just after a (re)connection the call can
   * fail while the member has not admitted us yet; without an answer its
   * stream would start at the first event gossip brings, and what it sent
   * before that would go unnoticed, so the call is tried again for a few
   * seconds (its events wait behind it, in order). The periodic check asks
   * once: it runs again soon.
   */
  private catchUp (nodeId: string, attempts = HEAD_ATTEMPTS): void {
    if (this.closed || nodeId === this.host.nodeId) return
    this.inbound.head(nodeId, this.askHead(nodeId, attempts))
  }

  /**
   * What a member that asks for our head is owed: everything after our last
   * sequence number when we saw it subscribe, if that was lately (its first
   * ask can come later than our next events); else only what comes next.
   */
  private subscribedSince (nodeId: string): number {
    const j = this.joined.get(nodeId)
    if (j === undefined) return this.sent
    if (Date.now() - j.at > JOINED_FOR_MS) {
      this.joined.delete(nodeId)
      return this.sent
    }
    return Math.min(j.sent, this.sent)
  }

  private async askHead (nodeId: string, attempts: number): Promise<Head | null> {
    const ask = async (): Promise<Head> => decodeHead(await this.host.calls.call(nodeId, `${this.topic}/head`, new Uint8Array(0), { timeoutMs: this.fetchTimeoutMs }))
    try {
      return await withRetries(ask, attempts, HEAD_RETRY_MS, () => {}, () => this.closed)
    } catch (err) {
      this.log.debug({ peer: nodeId, ...errorFields(err) }, 'could not ask a member for its last event')
      return null
    }
  }

  private ensureOpen (): void {
    if (this.closed) throw new ClusterStoppedError('the event bus is closed')
  }
}
