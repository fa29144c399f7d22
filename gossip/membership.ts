/**
 * The membership view: which nodes passed the join handshake, their
 * metadata, and what became of them. Only handshaken peers are members.
 *
 * A member is alive while at least one of its handshaken connections is
 * open. It leaves when it says `bye` (a clean stop), and fails when its last
 * connection closes without one: a crashed process closes its sockets at
 * once; a paused one stops answering libp2p pings and the connection
 * monitor aborts the connection after the ping timeout.
 */
import { EventEmitter } from 'node:events'
import type { Logger } from './logger.js'

export type MemberState = 'alive' | 'failed' | 'left'

/** A read-only snapshot of one member. */
export interface Member {
  /** The raft node id the member handshook with. */
  readonly nodeId: string
  readonly peerId: string
  /** The addresses it listens on, as it announced them. */
  readonly addresses: readonly string[]
  readonly appVersion: string
  /** Application metadata it announced (e.g. its HTTP address). */
  readonly meta: Readonly<Record<string, string>>
  /** When it last joined (clock ms). */
  readonly joinedAt: number
  /** When anything was last received from it (clock ms). */
  readonly lastSeen: number
  readonly state: MemberState
  /** When it left or failed; null while alive. */
  readonly downSince: number | null
  /** Why it failed; null unless failed. */
  readonly failure: string | null
}

export interface MembershipEvents {
  join: [Member]
  leave: [Member]
  failed: [Member]
}

export interface MembershipOptions {
  readonly clock?: () => number
  readonly logger: Logger
}

/** What the handshake established about a peer. */
export interface AdmittedPeer {
  readonly nodeId: string
  readonly peerId: string
  readonly addresses: readonly string[]
  readonly appVersion: string
  readonly meta?: Readonly<Record<string, string>>
}

interface MemberRecord {
  readonly nodeId: string
  readonly peerId: string
  addresses: readonly string[]
  appVersion: string
  meta: Readonly<Record<string, string>>
  joinedAt: number
  lastSeen: number
  state: MemberState
  downSince: number | null
  failure: string | null
  readonly connections: Set<string>
}

function snapshot (r: MemberRecord): Member {
  return Object.freeze({
    nodeId: r.nodeId,
    peerId: r.peerId,
    addresses: Object.freeze([...r.addresses]),
    appVersion: r.appVersion,
    meta: r.meta,
    joinedAt: r.joinedAt,
    lastSeen: r.lastSeen,
    state: r.state,
    downSince: r.downSince,
    failure: r.failure
  })
}

export class Membership extends EventEmitter<MembershipEvents> {
  private readonly byNode = new Map<string, MemberRecord>()
  private readonly byConnection = new Map<string, MemberRecord>()
  /** Alive members by libp2p peer id. */
  private readonly byPeer = new Map<string, MemberRecord>()
  private readonly clock: () => number
  private readonly log: Logger
  private closed = false

  constructor (opts: MembershipOptions) {
    super()
    this.clock = opts.clock ?? Date.now
    this.log = opts.logger
  }

  /** Every node ever seen, in any state. */
  list (): Member[] {
    return [...this.byNode.values()].map(snapshot)
  }

  alive (): Member[] {
    return [...this.byNode.values()].filter(r => r.state === 'alive').map(snapshot)
  }

  get (nodeId: string): Member | undefined {
    const r = this.byNode.get(nodeId)
    return r === undefined ? undefined : snapshot(r)
  }

  /** The alive member using this libp2p peer, if any. */
  aliveByPeer (peerId: string): Member | undefined {
    const r = this.aliveRecordByPeer(peerId)
    return r === undefined ? undefined : snapshot(r)
  }

  /** The node id of the alive member on this peer, or null: what transports check before trusting a frame. */
  nodeIdOfPeer (peerId: string): string | null {
    return this.aliveRecordByPeer(peerId)?.nodeId ?? null
  }

  /** The peer of an alive member, or null. */
  peerOf (nodeId: string): string | null {
    const r = this.byNode.get(nodeId)
    return r !== undefined && r.state === 'alive' ? r.peerId : null
  }

  isAlive (nodeId: string): boolean {
    return this.byNode.get(nodeId)?.state === 'alive'
  }

  /** Records that something arrived from the member now. */
  touch (nodeId: string): void {
    const r = this.byNode.get(nodeId)
    if (r !== undefined && r.state === 'alive') r.lastSeen = this.clock()
  }

  /**
   * A live member other than `peerId` holding `nodeId`: admitting the peer
   * would give one node id two identities.
   */
  conflictFor (nodeId: string, peerId: string): Member | null {
    const r = this.byNode.get(nodeId)
    return r !== undefined && r.state === 'alive' && r.peerId !== peerId ? snapshot(r) : null
  }

  /** A connection passed the handshake. Emits `join` unless the member was already alive. */
  admit (a: AdmittedPeer, connectionId: string): Member {
    if (this.closed) throw new Error('membership is closed')
    const now = this.clock()
    let r = this.byNode.get(a.nodeId)
    if (r !== undefined && r.state === 'alive' && r.peerId !== a.peerId) {
      throw new Error(`node id ${a.nodeId} is held by live peer ${r.peerId}`)
    }
    const joining = r === undefined || r.state !== 'alive'
    if (r === undefined || r.peerId !== a.peerId) {
      r = { ...a, meta: Object.freeze({ ...a.meta }), joinedAt: now, lastSeen: now, state: 'alive', downSince: null, failure: null, connections: new Set() }
      this.byNode.set(a.nodeId, r)
    } else {
      r.addresses = a.addresses
      r.appVersion = a.appVersion
      r.meta = Object.freeze({ ...a.meta })
      r.lastSeen = now
      if (joining) {
        r.joinedAt = now
        r.state = 'alive'
        r.downSince = null
        r.failure = null
      }
    }
    r.connections.add(connectionId)
    this.byConnection.set(connectionId, r)
    this.byPeer.set(r.peerId, r)
    if (joining) {
      this.log.info({ peer: a.nodeId, peerId: a.peerId, app: a.appVersion }, 'member joined')
      this.emit('join', snapshot(r))
    }
    return snapshot(r)
  }

  /** The member said `bye`: it is leaving cleanly, whatever its connections do next. */
  goodbye (peerId: string): void {
    const r = this.aliveRecordByPeer(peerId)
    if (r === undefined) return
    this.markDown(r, 'left', null)
  }

  /** A handshaken connection closed. The member fails if it was its last and no `bye` came. */
  connectionClosed (connectionId: string, reason: string): void {
    const r = this.byConnection.get(connectionId)
    if (r === undefined) return
    this.byConnection.delete(connectionId)
    r.connections.delete(connectionId)
    if (r.connections.size > 0 || r.state !== 'alive' || this.closed) return
    this.markDown(r, 'failed', reason)
  }

  /** Stops reporting: used when this node itself stops, so its own teardown is not reported as peer failures. */
  close (): void {
    this.closed = true
  }

  private markDown (r: MemberRecord, state: 'left' | 'failed', failure: string | null): void {
    if (this.byPeer.get(r.peerId) === r) this.byPeer.delete(r.peerId)
    r.state = state
    r.downSince = this.clock()
    r.failure = failure
    const m = snapshot(r)
    if (state === 'left') {
      this.log.info({ peer: r.nodeId, peerId: r.peerId }, 'member left')
      this.emit('leave', m)
    } else {
      this.log.warn({ peer: r.nodeId, peerId: r.peerId, reason: failure }, 'member failed')
      this.emit('failed', m)
    }
  }

  private aliveRecordByPeer (peerId: string): MemberRecord | undefined {
    return this.byPeer.get(peerId)
  }
}
