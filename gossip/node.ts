/**
 * One raftmesh node's libp2p stack: TCP, a pre-shared-key private network
 * derived from the cluster secret, noise, yamux, identify, ping, gossipsub,
 * bootstrap and optional mDNS discovery; plus the join handshake on every
 * connection and the membership view it feeds.
 *
 * Failure detection: a closed connection is seen at once, and every member
 * connection carries a keep-alive frame each way every `pingIntervalMs` on
 * its control stream; one silent for `pingTimeoutMs` is aborted, so a paused
 * process is noticed within about a second and a half. The gossipsub
 * streams of a live connection can die on their own (a send buffer over its
 * limit while the member was stalled): gossip-links.ts reopens them and
 * reports the break.
 */
import './polyfill.js'
import { gossipsub, StrictNoSign, type GossipSub } from '@libp2p/gossipsub'
import { identify, type Identify } from '@libp2p/identify'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { quietNoise } from './quiet-noise.js'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { EventEmitter } from 'node:events'
import { GossipChannel, type ChannelOptions } from './channel.js'
import { channelMessageId, MAX_CHANNEL_MESSAGE_BYTES } from './channel-codec.js'
import { peerIdOfAddr, Redialer } from './dialer.js'
import { Beat } from './beat.js'
import { Admission } from './admission.js'
import { SendWindow } from './send-window.js'
import { TurnBudget } from './turn-budget.js'
import './yamux-window.js'
import './xsalsa20-slices.js'
import { GossipLinks } from './gossip-links.js'
import { InvalidArgumentError, type HandshakeError } from './errors.js'
import { MAX_META_KEY, MAX_META_KEYS, MAX_META_VALUE, PROTOCOL_VERSION, type Hello, type PeerRecord } from './handshake.js'
import { errorFields, silentLogger, type Logger } from './logger.js'
import { Membership, type Member } from './membership.js'
import { PeerGate } from './peer-gate.js'
import { loadOrCreatePeerKey } from './peer-key.js'
import { swarmKeyFromSecret } from './swarm-key.js'

export interface MeshNodeOptions {
  /** This node's raft node id, chosen by the application; unique in the cluster. */
  readonly nodeId: string
  /** Peers with another cluster name are refused at the handshake. */
  readonly clusterName: string
  /** Application version; every node of a cluster must run exactly the same one. */
  readonly appVersion: string
  /** Where the peer key is kept (`peer-key`). Created if missing. */
  readonly dataDir: string
  /** The cluster secret (at least 16 bytes) from which the private-network key is derived. */
  readonly secret?: string | Uint8Array
  /** Run without a private network. For local development only; must be explicit. */
  readonly insecure?: boolean
  /** Listen multiaddrs. Default `/ip4/127.0.0.1/tcp/0`. */
  readonly listen?: readonly string[]
  /** Multiaddrs of peers to join through, with or without `/p2p/<peer id>`; redialed until connected. */
  readonly bootstrap?: readonly string[]
  /** Discover peers on the LAN by multicast DNS (scoped to the cluster name). Default off. */
  readonly mdns?: boolean | { readonly intervalMs?: number }
  /** Application metadata announced to every member (string values; at most 16 keys, 1 KiB each). */
  readonly meta?: Readonly<Record<string, string>>
  /** A pino-compatible logger; silent by default. */
  readonly logger?: Logger
  /** Clock for membership times. Default Date.now. */
  readonly clock?: () => number
  /** Send a keep-alive frame on every member connection this often. Default 500. */
  readonly pingIntervalMs?: number
  /** A member connection silent for longer than this is aborted (the member fails). Default 1000. */
  readonly pingTimeoutMs?: number
  /**
   * A member's gossip link (its gossipsub streams) that broke while the
   * connection stayed up is reopened at once; if it is still broken after
   * this long, the member's connections are aborted (it fails and is
   * redialed). Default 5000.
   */
  readonly gossipLinkTimeoutMs?: number
  /** Deadline of the join handshake. Default 5000. */
  readonly handshakeTimeoutMs?: number
  /** First redial delay after a failure; doubles up to `redialMaxMs`. Defaults 100 and 5000. */
  readonly redialBaseMs?: number
  readonly redialMaxMs?: number
  /** How long a failed member, or a peer another member told of, is redialed before it is given up on. Default 10 minutes. */
  readonly redialForMs?: number
  /** Overrides the raftmesh protocol version announced; only for tests of mixed versions. */
  readonly protocolVersion?: number
  /** Start listening at once. Default true. */
  readonly start?: boolean
}

export interface MeshServices extends Record<string, unknown> {
  identify: Identify
  pubsub: GossipSub
}

export interface MeshNodeEvents {
  /**
   * A peer was refused at the handshake (VersionMismatchError,
   * ClusterMismatchError, NodeIdConflictError, HandshakeError). Emitted only
   * when someone listens, so an unobserved refusal never crashes the
   * process; it is always logged.
   */
  error: [HandshakeError]
}

const DEFAULT_LISTEN = ['/ip4/127.0.0.1/tcp/0']
/** How long the larger peer id of two waits before dialing the other (see tieBreakMs). */
const TIE_BREAK_MS = 500
const MAX_OUTBOUND_BUFFER_BYTES = 8 * 1024 * 1024
/** Unsent bytes on a member's gossipsub stream above which channels wait before publishing (send-window.ts). */
const SEND_HIGH_WATER_BYTES = 1024 * 1024
/** How long a member's full gossipsub stream may hold publishing back: a pause is noticed in ~1.5 s. */
const SEND_STALL_MS = 500
/** How long received gossip may be handled in one turn before timers (keep-alives) get theirs. */
const TURN_BUDGET_MS = 20
/** How long gossipsub may take to open its streams to a member that just joined (identify runs first). */
const GOSSIP_LINK_GRACE_MS = 5000

function nonEmpty (name: string, v: unknown, max: number): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new InvalidArgumentError(`${name} must be a non-empty string of at most ${max} characters`)
  return v
}

function positive (name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt
  if (!Number.isFinite(v) || v <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got ${v}`)
  return v
}

export class MeshNode extends EventEmitter<MeshNodeEvents> {
  readonly nodeId: string
  readonly clusterName: string
  readonly appVersion: string
  readonly libp2p: Libp2p<MeshServices>
  readonly membership: Membership
  /** The gossipsub link to each member: broken ones are reopened and reported (`relinked`). */
  readonly gossipLinks: GossipLinks
  /** Peers refused at the connection gater; the fault layer's lever. */
  readonly gate: PeerGate
  readonly log: Logger
  private readonly opts: MeshNodeOptions
  private readonly redialer: Redialer
  /** How long a failed member, or a peer another member told of, is redialed. */
  private readonly redialForMs: number
  private readonly admission: Admission
  /** Channels wait here before publishing while a member's gossipsub stream is backed up. */
  readonly sendWindow: SendWindow
  /** Channels' validators step aside when a turn of the event loop has run long (turn-budget.ts). */
  readonly turn = new TurnBudget(TURN_BUDGET_MS)
  private stopping = false

  /** Use {@link createMeshNode}. */
  constructor (opts: MeshNodeOptions, libp2p: Libp2p<MeshServices>, gate: PeerGate, log: Logger) {
    super()
    this.opts = opts
    this.nodeId = opts.nodeId
    this.clusterName = opts.clusterName
    this.appVersion = opts.appVersion
    this.libp2p = libp2p
    this.gate = gate
    this.log = log
    this.membership = new Membership({ clock: opts.clock, logger: log })
    this.redialer = new Redialer({
      dial: async ({ addrs }) => (await libp2p.dial(addrs.map(a => multiaddr(a)))).remotePeer.toString(),
      satisfied: peerId => this.memberOrConnected(peerId),
      baseMs: positive('redialBaseMs', opts.redialBaseMs, 100),
      maxMs: positive('redialMaxMs', opts.redialMaxMs, 5000),
      logger: log
    })
    this.redialForMs = positive('redialForMs', opts.redialForMs, 10 * 60_000)
    this.membership.on('join', m => { this.redialer.removePeer(m.peerId) })
    this.membership.on('leave', m => { this.redialer.removePeer(m.peerId) })
    this.membership.on('failed', m => {
      if (!this.stopping) this.redialer.addPeer(m.peerId, m.addresses, this.redialForMs)
    })
    // Keep-alives and the gossip link check share one timer: one wake-up per beat.
    const beat = new Beat(positive('pingIntervalMs', opts.pingIntervalMs, 500))
    this.admission = new Admission({
      libp2p,
      membership: this.membership,
      logger: log,
      handshakeTimeoutMs: positive('handshakeTimeoutMs', opts.handshakeTimeoutMs, 5000),
      hello: () => this.hello(),
      refused: err => { if (this.listenerCount('error') > 0) this.emit('error', err) },
      learned: peers => { this.onLearned(peers) },
      beat,
      silenceMs: positive('pingTimeoutMs', opts.pingTimeoutMs, 1000)
    })
    this.gossipLinks = new GossipLinks({
      libp2p,
      membership: this.membership,
      logger: log,
      beat,
      graceMs: GOSSIP_LINK_GRACE_MS,
      timeoutMs: positive('gossipLinkTimeoutMs', opts.gossipLinkTimeoutMs, 5000)
    })
    libp2p.addEventListener('peer:discovery', evt => { this.onDiscovery(evt.detail.id) })
    const protocols = libp2p.services.pubsub.protocols
    this.sendWindow = new SendWindow({
      streams: {
        * outbound () {
          for (const c of libp2p.getConnections()) {
            for (const st of c.streams) if (st.direction === 'outbound' && protocols.includes(st.protocol)) yield st
          }
        }
      },
      highWaterBytes: SEND_HIGH_WATER_BYTES,
      stallMs: SEND_STALL_MS
    })
  }

  get peerId (): string {
    return this.libp2p.peerId.toString()
  }

  /** The addresses this node listens on, each ending in `/p2p/<peer id>`. */
  get multiaddrs (): string[] {
    return this.libp2p.getMultiaddrs().map(String)
  }

  /** Frames on members' control streams dropped as undecodable or invalid. */
  get badControlFrames (): number {
    return this.admission.badControlFrames
  }

  /** Live members (not including this node). */
  members (): Member[] {
    return this.membership.alive()
  }

  async start (): Promise<void> {
    if (this.libp2p.status !== 'started') {
      await this.admission.register()
      await this.libp2p.start()
    }
    for (const addr of this.opts.bootstrap ?? []) {
      // A cluster-wide bootstrap list usually names this node too.
      const peerId = peerIdOfAddr(addr)
      if (peerId !== this.peerId) this.redialer.addBootstrap(addr, this.tieBreakMs(peerId))
    }
    this.log.info({ peerId: this.peerId, addrs: this.multiaddrs }, 'mesh node started')
  }

  /**
   * Says goodbye to every member (so they see a leave, not a failure), then
   * stops libp2p. Stop the Raft node and close channels first. A stopped
   * mesh node cannot be started again: create a new one (same data dir,
   * same peer id).
   */
  async stop (): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.redialer.stop()
    this.gossipLinks.stop()
    await this.admission.goodbye()
    this.membership.close()
    await this.libp2p.stop()
    this.log.info({}, 'mesh node stopped')
  }

  /** Opens a gossip channel on `topic` (see channel.ts). One channel per topic per node. */
  channel (topic: string, opts: ChannelOptions = {}): GossipChannel {
    return new GossipChannel(this, topic, opts)
  }

  /** Dials a multiaddr now (outside the bootstrap list); resolves once connected, before the handshake. */
  async dial (addr: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.libp2p.dial(multiaddr(addr), options)
  }

  /** Tries bootstrap peers and failed members now, without waiting out their backoff. */
  redialNow (): void {
    this.redialer.redialNow()
  }

  private hello (): Hello {
    return {
      cluster: this.clusterName,
      protocol: this.opts.protocolVersion ?? PROTOCOL_VERSION,
      app: this.appVersion,
      node: this.nodeId,
      addrs: this.multiaddrs,
      meta: this.opts.meta ?? {}
    }
  }

  /**
   * Two nodes that learn of each other at the same moment (each lists the
   * other as a bootstrap peer, or both hear of each other in one peer
   * exchange) would dial each other at once and keep two connections, each
   * handshaken and kept alive. The one with the larger peer id waits
   * TIE_BREAK_MS first and does not dial if a connection exists by then.
   */
  private tieBreakMs (peerId: string | null): number {
    return peerId !== null && peerId < this.peerId ? TIE_BREAK_MS : 0
  }

  /** Nothing to dial for the peer: it is a member, or a connection to it is open or being dialed. */
  private memberOrConnected (peerId: string): boolean {
    return this.membership.nodeIdOfPeer(peerId) !== null || this.connectedTo(peerId)
  }

  /** A connection to the peer is open, or this node is dialing it now. */
  private connectedTo (peerId: string): boolean {
    return this.libp2p.getConnections().some(c => c.remotePeer.toString() === peerId) ||
      this.libp2p.getDialQueue().some(d => d.peerId?.toString() === peerId)
  }

  /** Dials `peerId` (after the tie-break wait) unless it is a member or connected by then. */
  private dialUnlessConnected (peerId: string, dial: () => Promise<unknown>): void {
    const go = (): void => {
      if (this.stopping || this.gate.denies(peerId) || this.memberOrConnected(peerId)) return
      dial().catch(err => { this.log.debug({ peerId, ...errorFields(err) }, 'dial of an exchanged or discovered peer failed') })
    }
    const wait = this.tieBreakMs(peerId)
    if (wait === 0) go()
    else setTimeout(go, wait).unref()
  }

  /** Dials members another member told us about, until they are members too, so the mesh is complete whatever the bootstrap list. */
  private onLearned (peers: readonly PeerRecord[]): void {
    for (const p of peers) {
      if (p.id === this.peerId || this.stopping || this.gate.denies(p.id) || this.membership.nodeIdOfPeer(p.id) !== null) continue
      try {
        for (const a of p.addrs) multiaddr(a)
      } catch {
        continue
      }
      this.redialer.learn(p.id, p.addrs, this.redialForMs, this.tieBreakMs(p.id))
    }
  }

  private onDiscovery (peer: PeerId): void {
    this.dialUnlessConnected(peer.toString(), async () => await this.libp2p.dial(peer))
  }
}

/**
 * Builds (and by default starts) a mesh node. Throws InvalidArgumentError
 * for bad options, notably a missing secret without `insecure: true`.
 */
export async function createMeshNode (opts: MeshNodeOptions): Promise<MeshNode> {
  nonEmpty('nodeId', opts.nodeId, 256)
  nonEmpty('clusterName', opts.clusterName, 128)
  nonEmpty('appVersion', opts.appVersion, 64)
  nonEmpty('dataDir', opts.dataDir, 4096)
  const meta = opts.meta ?? {}
  if (typeof meta !== 'object' || meta === null || Object.keys(meta).length > MAX_META_KEYS ||
    Object.entries(meta).some(([k, v]) => k.length === 0 || k.length > MAX_META_KEY || typeof v !== 'string' || v.length > MAX_META_VALUE)) {
    throw new InvalidArgumentError(`meta must map at most ${MAX_META_KEYS} keys of 1..${MAX_META_KEY} characters to strings of at most ${MAX_META_VALUE}`)
  }
  // msgpackr renames a `__proto__` key to `__proto_` when decoding (against
  // prototype pollution), so peers would see another key than the one set.
  if (Object.hasOwn(meta, '__proto__')) throw new InvalidArgumentError('meta cannot have a __proto__ key')
  for (const k of ['pingIntervalMs', 'pingTimeoutMs', 'gossipLinkTimeoutMs', 'handshakeTimeoutMs', 'redialBaseMs', 'redialMaxMs', 'redialForMs'] as const) positive(k, opts[k], 1)
  const hasSecret = opts.secret !== undefined && opts.secret !== null && opts.secret.length > 0
  if (!hasSecret && opts.insecure !== true) {
    throw new InvalidArgumentError('no cluster secret: pass `secret` (the same on every node), or `insecure: true` to run without a private network (local development only)')
  }
  const log = (opts.logger ?? silentLogger).child({ module: 'gossip', node: opts.nodeId })
  const protector = hasSecret ? preSharedKey({ psk: swarmKeyFromSecret(opts.secret as string | Uint8Array) }) : undefined
  if (protector === undefined) log.warn({}, 'running without a private network: any process that can reach this port can connect')
  const privateKey = await loadOrCreatePeerKey(opts.dataDir, log)
  const gate = new PeerGate()
  const denies = (peerId: PeerId): boolean => gate.denies(peerId.toString())
  const libp2p = await createLibp2p<MeshServices>({
    privateKey,
    start: false,
    addresses: { listen: [...(opts.listen ?? DEFAULT_LISTEN)] },
    transports: [tcp()],
    connectionEncrypters: [quietNoise()],
    streamMuxers: [yamux()],
    ...(protector === undefined ? {} : { connectionProtector: protector }),
    connectionGater: {
      denyDialPeer: denies,
      denyInboundEncryptedConnection: denies,
      denyOutboundEncryptedConnection: denies
    },
    // Liveness is the admission's keep-alive on each member's control stream
    // (one small frame per beat); the monitor's pings open a stream each time.
    connectionMonitor: { enabled: false },
    peerDiscovery: opts.mdns === undefined || opts.mdns === false
      ? []
      : [mdns({ serviceTag: `raftmesh-${opts.clusterName}`, interval: typeof opts.mdns === 'object' ? opts.mdns.intervalMs : undefined })],
    services: {
      identify: identify(),
      // StrictNoSign: every connection is already authenticated (pnet with
      // the cluster secret, then noise with the peer key) and only peers that
      // passed the handshake are accepted as message sources, so per-message
      // signatures would only cost CPU. Without signatures gossipsub has no
      // seqno/from to build ids from; the channel header is the id instead.
      pubsub: gossipsub({
        globalSignaturePolicy: StrictNoSign,
        msgIdFn: channelMessageId,
        // gossipsub keys its duplicate caches by a string of the id, by default
        // its base64 in JavaScript (1.4 KiB of garbage per message received);
        // latin1 maps each byte to one character natively.
        msgIdToStrFn: id => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('latin1'),
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        fallbackToFloodsub: false,
        maxInboundDataLength: MAX_CHANNEL_MESSAGE_BYTES + 1024,
        // Bounded per-peer send buffers: under a publish flood gossipsub drops
        // (the channel reports the gap) instead of buffering without limit,
        // which starves pings and has crashed pnet's cipher (bench/RESULTS.md).
        maxOutboundBufferSize: MAX_OUTBOUND_BUFFER_BYTES,
        // Each peer's read loop waits for the message it handles, so a
        // channel's validator can make it step aside (turn-budget.ts).
        awaitRpcHandler: true,
        awaitRpcMessageHandler: true,
        // Members form a full mesh of connections and a publisher floods its
        // own messages to every subscriber, so each member already gets each
        // message straight from its publisher. A gossipsub mesh (D peers
        // forwarding everything they receive) only multiplies the copies:
        // with 5 nodes, 16 transmissions of each message instead of 4, which
        // measured as 10x the event latency (bench/RESULTS.md, fifth
        // session). Lazy gossip (IHAVE/IWANT) is off for the same reason.
        // What a member misses, the channel finds as a gap and the services
        // repair from the publisher directly; a member cut off from a
        // publisher but not from the rest waits for its own link to heal.
        D: 0,
        Dlo: 0,
        Dhi: 0,
        Dout: 0,
        Dscore: 0,
        Dlazy: 0,
        gossipFactor: 0
      })
    }
  })
  const node = new MeshNode(opts, libp2p, gate, log)
  if (opts.start !== false) await node.start()
  return node
}
