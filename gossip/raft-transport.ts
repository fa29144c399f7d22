/**
 * Raft's Transport over libp2p (`/raftmesh/raft/1.0.0`). Each node keeps one
 * long-lived outbound stream per member for the messages it sends (see
 * raft-link.ts) and reads the members' streams towards it; a stream per
 * message would cost about ten times the round trip.
 *
 * Everything inbound is distrusted until proven: the peer must be a live
 * member (it passed the join handshake on this connection's peer), the frame
 * must decode as a valid Raft message (gossip/raft-codec.ts), and the
 * message must come `from` the node id that peer handshook with and be
 * addressed to this node. Anything else is dropped, counted and logged; a
 * stream whose framing breaks is aborted. Nothing a peer sends can throw
 * out of this module.
 */
import './polyfill.js'
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Message, Transport } from '../raft/index.js'
import { InvalidArgumentError } from './errors.js'
import { FrameDecoder, lengthPrefixed } from './length-prefix.js'
import { errorFields, type Logger } from './logger.js'
import type { Member } from './membership.js'
import type { MeshNode } from './node.js'
import { decodeRaftMessage, encodeRaftMessage, InvalidFrameError, MAX_FRAME_BYTES } from './raft-codec.js'
import { RaftLink, type LinkCounters, type LinkLimits } from './raft-link.js'
import { batchWindowUpdates } from './window-updates.js'

export const RAFT_PROTOCOL = '/raftmesh/raft/1.0.0'

export interface RaftTransportOptions {
  /** Frames queued per peer before the oldest are dropped. Default 4096. */
  readonly maxQueuedFrames?: number
  /** Bytes queued per peer before the oldest frames are dropped. Default 64 MiB. */
  readonly maxQueuedBytes?: number
  /** Largest inbound frame. Default the codec's MAX_FRAME_BYTES. */
  readonly maxFrameBytes?: number
  /** Backoff for reopening a broken stream. Defaults 50 and 2000 ms. */
  readonly reconnectBaseMs?: number
  readonly reconnectMaxMs?: number
}

export interface RaftTransportStats {
  /** Messages handed to streams. */
  readonly sent: number
  /** Messages delivered to Raft. */
  readonly received: number
  /** Inbound frames dropped: undecodable, invalid, wrong sender or addressee, or broken framing. */
  readonly badFrames: number
  /** Inbound frames dropped because the peer is not a live member. */
  readonly notMember: number
  /** Outbound messages dropped from a full queue or when their peer went away. */
  readonly dropped: number
  /** Outbound messages for nodes that are not live members. */
  readonly unreachable: number
  readonly streamsOpened: number
}

/**
 * A fault hook (see fault.ts): returns null to drop the message, 0 to pass
 * it, or a delay in milliseconds.
 */
export type RaftFault = (m: Message, direction: 'out' | 'in') => number | null

export class Libp2pRaftTransport implements Transport {
  readonly mesh: MeshNode
  /** Installed by the fault layer; null in production. */
  fault: RaftFault | null = null
  private readonly log: Logger
  private readonly limits: LinkLimits
  private readonly maxFrameBytes: number
  private readonly links = new Map<string, RaftLink>()
  private readonly inbound = new Set<Stream>()
  private readonly counters: LinkCounters = { dropped: 0, streamsOpened: 0, sent: 0 }
  private received = 0
  private badFrames = 0
  private notMember = 0
  private unreachable = 0
  private handler: ((m: Message) => void) | null = null
  private closed = false
  private lastWarn = 0
  private readonly onDown = (m: Member): void => { this.links.get(m.nodeId)?.reset(`member ${m.nodeId} is ${m.state}`) }

  private constructor (mesh: MeshNode, opts: RaftTransportOptions) {
    this.mesh = mesh
    this.log = mesh.log.child({ module: 'raft-transport' })
    this.limits = {
      maxQueuedFrames: count('maxQueuedFrames', opts.maxQueuedFrames, 4096),
      maxQueuedBytes: count('maxQueuedBytes', opts.maxQueuedBytes, 64 * 1024 * 1024),
      reconnectBaseMs: count('reconnectBaseMs', opts.reconnectBaseMs, 50),
      reconnectMaxMs: count('reconnectMaxMs', opts.reconnectMaxMs, 2000)
    }
    this.maxFrameBytes = count('maxFrameBytes', opts.maxFrameBytes, MAX_FRAME_BYTES)
    mesh.membership.on('failed', this.onDown)
    mesh.membership.on('leave', this.onDown)
  }

  /** Registers the protocol handler on the mesh node and returns the transport. */
  static async create (mesh: MeshNode, opts: RaftTransportOptions = {}): Promise<Libp2pRaftTransport> {
    const t = new Libp2pRaftTransport(mesh, opts)
    await mesh.libp2p.handle(RAFT_PROTOCOL, (stream, conn) => { t.onStream(stream, conn) }, { maxInboundStreams: 4, force: true })
    return t
  }

  onMessage (handler: (m: Message) => void): void {
    this.handler = handler
  }

  send (messages: readonly Message[]): void {
    if (this.closed) return
    for (const m of messages) {
      const verdict = this.fault === null ? 0 : this.fault(m, 'out')
      if (verdict === null) continue
      if (verdict > 0) setTimeout(() => { this.sendOne(m) }, verdict).unref()
      else this.sendOne(m)
    }
  }

  stats (): RaftTransportStats {
    return {
      sent: this.counters.sent,
      received: this.received,
      badFrames: this.badFrames,
      notMember: this.notMember,
      dropped: this.counters.dropped,
      unreachable: this.unreachable,
      streamsOpened: this.counters.streamsOpened
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.mesh.membership.off('failed', this.onDown)
    this.mesh.membership.off('leave', this.onDown)
    for (const link of this.links.values()) link.close()
    this.links.clear()
    for (const s of this.inbound) s.abort(new Error('raft transport closed'))
    this.inbound.clear()
    if (this.mesh.libp2p.status === 'started') await this.mesh.libp2p.unhandle(RAFT_PROTOCOL).catch(() => {})
  }

  private sendOne (m: Message): void {
    if (this.closed) return
    const peerId = this.mesh.membership.peerOf(m.to)
    if (peerId === null) {
      this.unreachable++
      return
    }
    let link = this.links.get(m.to)
    if (link === undefined) {
      link = new RaftLink(m.to, peerId, async p => await this.openStream(p), this.limits, this.counters, this.log)
      this.links.set(m.to, link)
    } else if (link.peerId !== peerId) {
      // The node came back with a new identity (new data directory).
      link.reset('peer changed')
      link.peerId = peerId
    }
    link.enqueue(lengthPrefixed(encodeRaftMessage(m)))
  }

  private async openStream (peerId: string): Promise<Stream> {
    const stream = await this.mesh.libp2p.dialProtocol(peerIdFromString(peerId), RAFT_PROTOCOL, { signal: AbortSignal.timeout(5000) })
    // We only write on our stream; whatever the peer writes back is not ours to trust.
    stream.addEventListener('message', () => {})
    return stream
  }

  private onStream (stream: Stream, conn: Connection): void {
    if (this.closed) {
      stream.abort(new Error('raft transport closed'))
      return
    }
    const peerId = conn.remotePeer.toString()
    batchWindowUpdates(stream)
    const decoder = new FrameDecoder(this.maxFrameBytes)
    this.inbound.add(stream)
    stream.addEventListener('close', () => { this.inbound.delete(stream) })
    stream.addEventListener('message', evt => {
      let frames: Uint8Array[]
      try {
        frames = decoder.push(evt.data)
      } catch (err) {
        this.badFrames++
        this.warn({ peerId, ...errorFields(err) }, 'aborting a raft stream with broken framing')
        stream.abort(err as Error)
        return
      }
      for (const f of frames) this.onFrame(f, peerId)
    })
  }

  private onFrame (frame: Uint8Array, peerId: string): void {
    const nodeId = this.mesh.membership.nodeIdOfPeer(peerId)
    if (nodeId === null) {
      this.notMember++
      this.warn({ peerId }, 'dropping a raft frame from a peer that is not a member')
      return
    }
    let m: Message
    try {
      m = decodeRaftMessage(frame)
      if (m.from !== nodeId) throw new InvalidFrameError(`message claims to be from ${m.from} but the peer handshook as ${nodeId}`)
      if (m.to !== this.mesh.nodeId) throw new InvalidFrameError(`message is addressed to ${m.to}, not to this node`)
    } catch (err) {
      this.badFrames++
      this.warn({ peer: nodeId, ...errorFields(err) }, 'dropping a bad raft frame')
      return
    }
    this.mesh.membership.touch(nodeId)
    const verdict = this.fault === null ? 0 : this.fault(m, 'in')
    if (verdict === null) return
    if (verdict > 0) setTimeout(() => { this.deliver(m) }, verdict).unref()
    else this.deliver(m)
  }

  private deliver (m: Message): void {
    if (this.closed || this.handler === null) return
    this.received++
    try {
      this.handler(m)
    } catch (err) {
      this.log.error({ peer: m.from, type: m.type, ...errorFields(err) }, 'raft rejected a message')
    }
  }

  /** Warns at most once a second: a hostile peer must not turn the log into the attack. */
  private warn (fields: Record<string, unknown>, msg: string): void {
    const now = Date.now()
    if (now - this.lastWarn < 1000) return
    this.lastWarn = now
    this.log.warn({ ...fields, badFrames: this.badFrames, notMember: this.notMember }, msg)
  }
}

function count (name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt
  if (!Number.isInteger(v) || v <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got ${v}`)
  return v
}
