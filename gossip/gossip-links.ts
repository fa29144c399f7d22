/**
 * The gossipsub link to each member: an outbound stream gossipsub sends on
 * and an inbound stream it reads, both on the member's connection.
 *
 * gossipsub opens its outbound stream to a peer only when a connection
 * opens (its topology's onConnect), and forgets a stream that closes. A
 * stream can die while the connection lives on: its write buffer passes
 * `maxOutboundBufferSize` while the receiver is stalled (libp2p aborts the
 * stream), or any stream error. The sender then has no stream to that peer
 * and drops every message for it ("no open stream"); the receiver sees its
 * inbound stream reset, removes the sender from gossipsub altogether
 * (subscriptions included) and closes its own outbound stream to it. The
 * two members stay connected and alive in the membership view, and gossip
 * between them is silent for good.
 *
 * This watcher checks every member's link each beat of the mesh's
 * keep-alive timer. A link that broke is reopened through gossipsub (see
 * reopenGossipStreams); one that stays broken for `timeoutMs` has its
 * connections aborted, so the member fails and is redialed like after any
 * other cut. A link that broke and is whole again, or whose streams were
 * replaced between two checks, is reported as `relinked`: messages may
 * have been lost both ways, and the services above repair as after a
 * reconnect (events head check, anti-entropy, invalidation caches drop
 * their copies).
 */
import type { GossipSub } from '@libp2p/gossipsub'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { EventEmitter } from 'node:events'
import type { Beat } from './beat.js'
import { errorFields, type Logger } from './logger.js'
import type { Membership } from './membership.js'

export interface GossipLinkEvents {
  /** The gossip link to a member broke (its node id): what was sent on it meanwhile may be lost. */
  down: [string]
  /** The gossip link to a member is whole again after a break: repair what was lost. */
  relinked: [string]
}

export interface GossipLinkStats {
  /** Breaks found (a stream missing, or replaced between two checks). */
  readonly broken: number
  /** Links whole again after a break. */
  readonly relinked: number
  /** Member connections aborted because their link could not be reopened in time. */
  readonly resets: number
}

export interface GossipLinksOptions {
  readonly libp2p: Libp2p<{ pubsub: GossipSub }>
  readonly membership: Membership
  readonly logger: Logger
  /** Every member's link is checked each beat. */
  readonly beat: Beat
  /** A new member's link may take this long to open before it counts as broken. */
  readonly graceMs: number
  /** A link broken for this long despite reopening has its connections aborted. */
  readonly timeoutMs: number
}

type LinkState = 'new' | 'up' | 'down'

interface Link {
  readonly peerId: string
  state: LinkState
  /** When the member joined (state 'new') or the link broke (state 'down'). */
  since: number
  /** Ids of the streams of the link when last seen whole. */
  out: string
  in: string
}

/**
 * Reopens gossipsub's streams on `connection` by calling what libp2p's
 * registrar calls when a connection supporting gossipsub opens: gossipsub
 * adds the peer back (if its inbound stream's reset removed it) and opens
 * an outbound stream unless it has one; the remote, seeing the new inbound
 * stream, does the same. It is idempotent: a whole link is left alone.
 *
 * gossipsub (@libp2p/gossipsub 17.1) has no public way to do this:
 * `onPeerConnected` is private. Returns false if it is not there (another
 * version): the caller then falls back to aborting the connection.
 * test/gossip-links.test.ts fails if it changes.
 */
export function reopenGossipStreams (pubsub: GossipSub, connection: Connection): boolean {
  const internal = pubsub as unknown as { onPeerConnected?: (peerId: Connection['remotePeer'], connection: Connection) => void }
  if (typeof internal.onPeerConnected !== 'function') return false
  internal.onPeerConnected(connection.remotePeer, connection)
  return true
}

/** Whether a gossipsub stream still carries data in its direction (a half-closed one stays listed as open). */
function carries (s: Stream): boolean {
  if (s.status !== 'open') return false
  return s.direction === 'outbound'
    ? s.writeStatus === 'writable' && s.remoteReadStatus !== 'closed'
    : s.readStatus !== 'closed' && s.readStatus !== 'closing' && s.remoteWriteStatus === 'writable'
}

export class GossipLinks extends EventEmitter<GossipLinkEvents> {
  private readonly opts: GossipLinksOptions
  private readonly log: Logger
  private readonly links = new Map<string, Link>()
  private stopBeat: (() => void) | null = null
  private readonly counts = { broken: 0, relinked: 0, resets: 0 }
  private warnedInternal = false

  constructor (opts: GossipLinksOptions) {
    super()
    this.opts = opts
    this.log = opts.logger
    this.start()
  }

  stats (): GossipLinkStats {
    return { ...this.counts }
  }

  /** Whether the gossip link to a member was whole at the last check. */
  isUp (nodeId: string): boolean {
    return this.links.get(nodeId)?.state === 'up'
  }

  /** Checks each beat (from construction on; again after `stop`, starting at once: what `isUp` says may be stale). */
  start (): void {
    if (this.stopBeat !== null) return
    this.stopBeat = this.opts.beat.add(() => { this.check() })
    this.check()
  }

  stop (): void {
    this.stopBeat?.()
    this.stopBeat = null
  }

  /** One pass over every live member; runs each beat (tests may call it). */
  check (): void {
    const { libp2p, membership } = this.opts
    if (libp2p.status !== 'started') return
    const now = Date.now()
    const alive = membership.alive()
    const seen = new Set<string>()
    for (const m of alive) {
      seen.add(m.nodeId)
      let link = this.links.get(m.nodeId)
      if (link === undefined || link.peerId !== m.peerId) {
        link = { peerId: m.peerId, state: 'new', since: m.joinedAt, out: '', in: '' }
        this.links.set(m.nodeId, link)
      }
      this.checkLink(m.nodeId, link, now)
    }
    // A member that failed or left starts over as new when it comes back.
    for (const id of this.links.keys()) if (!seen.has(id)) this.links.delete(id)
  }

  private checkLink (nodeId: string, link: Link, now: number): void {
    const { out, in: inbound } = this.streamsOf(link.peerId)
    if (out !== '' && inbound !== '') {
      const replaced = link.state === 'up' && (out !== link.out || inbound !== link.in)
      if (replaced) {
        // Reopened between two checks (by the member, or by gossipsub itself): it broke all the same.
        this.counts.broken++
        this.log.warn({ peer: nodeId }, 'gossip link to a member was replaced: messages on the old one may be lost')
      }
      if (link.state === 'down' || replaced) {
        this.counts.relinked++
        this.log.info({ peer: nodeId }, 'gossip link to a member is whole again')
        this.emit('relinked', nodeId)
      }
      link.state = 'up'
      link.out = out
      link.in = inbound
      return
    }
    if (link.state === 'up' || (link.state === 'new' && now - link.since > this.opts.graceMs)) {
      this.counts.broken++
      this.log.warn({ peer: nodeId, outbound: out !== '', inbound: inbound !== '' }, 'gossip link to a connected member is broken: reopening it')
      link.state = 'down'
      link.since = now
      this.emit('down', nodeId)
    }
    if (link.state !== 'down') return
    const reopened = this.reopen(link.peerId)
    if (!reopened || now - link.since > this.opts.timeoutMs) {
      // Aborting costs the member's Raft and call streams too, hence the wait first.
      this.counts.resets++
      this.log.warn({ peer: nodeId, brokenMs: now - link.since }, 'gossip link to a member could not be reopened: aborting its connections')
      link.since = now
      for (const c of this.opts.libp2p.getConnections()) {
        if (c.remotePeer.toString() === link.peerId) c.abort(new Error('gossip link could not be reopened'))
      }
    }
  }

  /** Ids of the gossipsub streams that carry data to and from the peer ('' if none). */
  private streamsOf (peerId: string): { out: string, in: string } {
    const { libp2p } = this.opts
    const pubsub = libp2p.services.pubsub
    const out: string[] = []
    const inbound: string[] = []
    for (const c of libp2p.getConnections()) {
      if (c.remotePeer.toString() !== peerId || c.status !== 'open') continue
      for (const s of c.streams) {
        if (!pubsub.protocols.includes(s.protocol) || !carries(s)) continue
        ;(s.direction === 'outbound' ? out : inbound).push(`${c.id}/${s.id}`)
      }
    }
    // A peer gossipsub removed (its inbound stream was reset) gets nothing, whatever is still open.
    const sending = pubsub.getPeers().some(p => p.toString() === peerId)
    return { out: sending ? out.sort().join(',') : '', in: inbound.sort().join(',') }
  }

  private reopen (peerId: string): boolean {
    const { libp2p } = this.opts
    const conn = libp2p.getConnections().find(c => c.remotePeer.toString() === peerId && c.status === 'open')
    if (conn === undefined) return true
    try {
      if (reopenGossipStreams(libp2p.services.pubsub, conn)) return true
    } catch (err) {
      this.log.error({ ...errorFields(err) }, 'reopening gossipsub streams failed')
      return false
    }
    if (!this.warnedInternal) {
      this.warnedInternal = true
      this.log.error({}, 'this gossipsub version cannot reopen a stream (onPeerConnected is gone): broken gossip links will be reset')
    }
    return false
  }
}
