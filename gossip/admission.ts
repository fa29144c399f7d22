/**
 * Admission of connections into the membership: runs the join handshake on
 * every new connection (the dialing side starts it), admits the peer on
 * success, refuses it (log, `error` event, close) on failure, and then
 * serves the connection's control stream: the `peers` exchange that makes
 * the mesh complete, and the `bye` that marks a clean leave.
 */
import './polyfill.js'
import type { Connection, Libp2p, Stream, StreamCloseEvent } from '@libp2p/interface'
import { HandshakeError, NodeIdConflictError } from './errors.js'
import type { Beat } from './beat.js'
import type { FrameStream } from './frame-stream.js'
import {
  answerHandshake, decodeControl, encodeControl, HANDSHAKE_PROTOCOL, initiateHandshake, MAX_EXCHANGED_PEERS,
  type HandshakeOptions, type HandshakeResult, type Hello, type PeerRecord
} from './handshake.js'
import { errorFields, type Logger } from './logger.js'
import type { Membership } from './membership.js'

export interface AdmissionOptions {
  readonly libp2p: Libp2p
  readonly membership: Membership
  readonly logger: Logger
  readonly handshakeTimeoutMs: number
  /** This node's hello, computed when needed (its addresses are known only once listening). */
  readonly hello: () => Hello
  /** Reports a refused peer. */
  readonly refused: (err: HandshakeError) => void
  /** Peers a member told us about; the node dials those it does not know. */
  readonly learned: (peers: readonly PeerRecord[]) => void
  /** Sends an `alive` frame on every member connection each beat. */
  readonly beat: Beat
  /** A member connection silent for longer than this is aborted: the member fails. */
  readonly silenceMs: number
}

/** How long a stopping node waits for each member to answer its `bye`. */
const BYE_WAIT_MS = 1000

function closeReason (evt: StreamCloseEvent): string {
  const e = evt.error
  if (e === undefined) return 'connection closed without a goodbye'
  // The keep-alive aborts a connection that stayed silent too long.
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `silent for too long (${e.message})`
  return `connection lost: ${e.message}`
}

export class Admission {
  private readonly opts: AdmissionOptions
  private readonly log: Logger
  private readonly controls = new Map<string, FrameStream>()
  /** Per control stream being said goodbye on: called when the peer answers `bye-seen` or the stream ends. */
  private readonly byeSeen = new Map<string, () => void>()
  private readonly handshaking = new Set<string>()
  /** Handshakes under way; a stopping node lets them finish so the peer hears its `bye`. */
  private readonly inFlight = new Set<Promise<void>>()
  /** No new handshakes once set; the ones in flight still complete. */
  private leaving = false
  private stopping = false
  private badControl = 0
  private lastWarn = 0

  constructor (opts: AdmissionOptions) {
    this.opts = opts
    this.log = opts.logger
    opts.libp2p.addEventListener('connection:open', evt => { this.onConnection(evt.detail) })
  }

  /** Frames on members' control streams dropped as undecodable or invalid. */
  get badControlFrames (): number {
    return this.badControl
  }

  /** Registers the handshake protocol; call before libp2p starts listening. */
  async register (): Promise<void> {
    await this.opts.libp2p.handle(HANDSHAKE_PROTOCOL, (stream, conn) => { this.onHandshakeStream(stream, conn) }, { maxInboundStreams: 2, force: true })
  }

  /**
   * Says `bye` on every control stream so members record a leave, not a
   * failure. A peer whose handshake is still under way may already count us
   * as a member, so those handshakes finish first (for at most 1 s). Each
   * connection is closed only once its peer answered that it recorded the
   * leave (for at most `BYE_WAIT_MS`): closing at once can reset the
   * connection, and a peer that writes into the reset before reading loses
   * the `bye` with the rest of its unread bytes and reports a failure.
   */
  async goodbye (): Promise<void> {
    this.leaving = true
    if (this.inFlight.size > 0) {
      const cap = new Promise<void>(resolve => { setTimeout(resolve, 1000).unref() })
      await Promise.race([Promise.allSettled([...this.inFlight]), cap])
    }
    this.stopping = true
    const bye = encodeControl({ t: 'bye' })
    await Promise.allSettled([...this.controls].map(async ([connId, c]) => {
      const signal = AbortSignal.timeout(BYE_WAIT_MS)
      const answered = new Promise<void>(resolve => {
        this.byeSeen.set(connId, resolve)
        c.onEnd(() => { resolve() })
        signal.addEventListener('abort', () => { resolve() }, { once: true })
      })
      try {
        await c.write(bye, { signal })
        await answered
      } finally {
        this.byeSeen.delete(connId)
      }
      await c.close({ signal: AbortSignal.timeout(500) })
    }))
  }

  private handshakeOptions (peerId: string): HandshakeOptions {
    return {
      local: this.opts.hello(),
      peerId,
      timeoutMs: this.opts.handshakeTimeoutMs,
      admit: (remote, pid) => {
        const holder = this.opts.membership.conflictFor(remote.node, pid)
        return holder === null ? null : new NodeIdConflictError(`node id ${remote.node} is already used by live peer ${holder.peerId}`, pid, remote.node)
      }
    }
  }

  private onConnection (conn: Connection): void {
    if (this.leaving) return
    const peerId = conn.remotePeer.toString()
    if (conn.direction === 'inbound') {
      // A dialer that never starts the handshake (not raftmesh, or stuck) must not hold a connection.
      setTimeout(() => {
        if (conn.status === 'open' && !this.handshaking.has(conn.id) && !this.controls.has(conn.id)) {
          this.refuse(conn, null, new HandshakeError(`peer ${peerId} started no handshake within ${this.opts.handshakeTimeoutMs} ms`, peerId))
        }
      }, this.opts.handshakeTimeoutMs).unref()
      return
    }
    this.handshaking.add(conn.id)
    this.track((async () => {
      let stream: Stream
      try {
        stream = await conn.newStream(HANDSHAKE_PROTOCOL, { signal: AbortSignal.timeout(this.opts.handshakeTimeoutMs) })
      } catch (err) {
        this.handshaking.delete(conn.id)
        this.refuse(conn, null, new HandshakeError(`cannot open a handshake stream to peer ${peerId}: ${(err as Error).message}`, peerId))
        return
      }
      await this.run(conn, stream, initiateHandshake)
    })())
  }

  /**
   * Liveness of a member connection on its control stream: an `alive` frame
   * every keepAliveMs each way, and an abort once nothing arrived for
   * silenceMs. A paused process is noticed within silenceMs plus one beat,
   * and it costs one small frame per beat on an open stream, where a ping
   * protocol opens and negotiates a new stream every time. If our own timer
   * ran late (this event loop was stalled), the silence is ours: start over.
   * A beat is skipped while the last one still waits for the stream to
   * drain (it rejects when the connection closes), rather than bounded by a
   * timer of its own: that timer fired silenceMs after every beat, twice
   * a second per member, on an otherwise idle node. The mesh's one Beat
   * runs every member's: a wake-up per beat, not one per member.
   */
  private keepAlive (conn: Connection, control: FrameStream): { heard: () => void, stop: () => void } {
    const { beat: { periodMs: keepAliveMs }, silenceMs } = this.opts
    const alive = encodeControl({ t: 'alive' })
    let heardAt = Date.now()
    let beatAt = heardAt
    let draining = false
    const stop = this.opts.beat.add(() => {
      const now = Date.now()
      const late = now - beatAt > keepAliveMs + silenceMs / 2
      beatAt = now
      if (late) heardAt = now
      if (now - heardAt > silenceMs) {
        const err = new Error(`nothing from the peer for ${now - heardAt} ms`)
        err.name = 'TimeoutError'
        conn.abort(err)
        return
      }
      if (draining) return
      draining = true
      control.write(alive).catch(() => {}).finally(() => { draining = false })
    })
    return { heard: () => { heardAt = Date.now() }, stop }
  }

  private track (handshake: Promise<void>): void {
    this.inFlight.add(handshake)
    handshake
      .catch(err => { this.log.error({ ...errorFields(err) }, 'handshake failed unexpectedly') })
      .finally(() => { this.inFlight.delete(handshake) })
  }

  private onHandshakeStream (stream: Stream, conn: Connection): void {
    if (conn.direction !== 'inbound' || this.handshaking.has(conn.id) || this.leaving) {
      stream.abort(new Error('unexpected handshake stream'))
      return
    }
    this.handshaking.add(conn.id)
    this.track(this.run(conn, stream, answerHandshake))
  }

  private async run (conn: Connection, stream: Stream, handshake: (s: Stream, o: HandshakeOptions) => Promise<HandshakeResult>): Promise<void> {
    const peerId = conn.remotePeer.toString()
    let result: HandshakeResult
    try {
      result = await handshake(stream, this.handshakeOptions(peerId))
    } catch (err) {
      this.handshaking.delete(conn.id)
      const herr = err instanceof HandshakeError ? err : new HandshakeError(`handshake with peer ${peerId} failed: ${(err as Error).message}`, peerId)
      this.refuse(conn, stream, herr)
      return
    }
    this.accept(conn, result)
  }

  private accept (conn: Connection, { hello, control }: HandshakeResult): void {
    const peerId = conn.remotePeer.toString()
    const membership = this.opts.membership
    if (this.stopping || conn.status !== 'open') {
      this.handshaking.delete(conn.id)
      return
    }
    // Two connections from different peers may have handshaken with one node id concurrently.
    const holder = membership.conflictFor(hello.node, peerId)
    if (holder !== null) {
      this.handshaking.delete(conn.id)
      this.refuse(conn, control.stream, new NodeIdConflictError(`node id ${hello.node} is already used by live peer ${holder.peerId}`, peerId, hello.node))
      return
    }
    const addresses = hello.addrs.length > 0 ? hello.addrs : conn.direction === 'outbound' ? [conn.remoteAddr.toString()] : []
    this.controls.set(conn.id, control)
    const keepAlive = this.keepAlive(conn, control)
    conn.addEventListener('close', evt => {
      keepAlive.stop()
      this.controls.delete(conn.id)
      this.handshaking.delete(conn.id)
      membership.connectionClosed(conn.id, closeReason(evt))
    }, { once: true })
    membership.admit({ nodeId: hello.node, peerId, addresses, appVersion: hello.app, meta: hello.meta }, conn.id)
    control.onFrame(frame => {
      keepAlive.heard()
      membership.touch(hello.node)
      try {
        const f = decodeControl(frame, peerId)
        if (f.t === 'bye') {
          membership.goodbye(peerId)
          control.write(encodeControl({ t: 'bye-seen' }), { signal: AbortSignal.timeout(BYE_WAIT_MS) })
            .catch(err => { this.log.debug({ peer: hello.node, ...errorFields(err) }, 'could not answer a bye') })
        } else if (f.t === 'bye-seen') {
          this.byeSeen.get(conn.id)?.()
        } else if (f.t === 'peers') {
          this.opts.learned(f.peers)
        }
      } catch (err) {
        this.badControl++
        // At most once a second: a hostile member must not turn the log into the attack.
        const now = Date.now()
        if (now - this.lastWarn >= 1000) {
          this.lastWarn = now
          this.log.warn({ peer: hello.node, badControlFrames: this.badControl, ...errorFields(err) }, 'ignoring a bad control frame')
        }
      }
    })
    if (conn.status !== 'open') {
      membership.connectionClosed(conn.id, 'connection closed during the handshake')
      return
    }
    const peers = membership.alive()
      .filter(m => m.peerId !== peerId && m.addresses.length > 0)
      .slice(0, MAX_EXCHANGED_PEERS)
      .map(m => ({ id: m.peerId, addrs: m.addresses.slice(0, 16) }))
    if (peers.length > 0) {
      control.write(encodeControl({ t: 'peers', peers }), { signal: AbortSignal.timeout(this.opts.handshakeTimeoutMs) })
        .catch(err => { this.log.debug({ peer: hello.node, ...errorFields(err) }, 'could not send the peer list') })
    }
  }

  /** Logs and reports a refused peer, then closes the connection (letting the last frames reach it first). */
  private refuse (conn: Connection, stream: Stream | null, err: HandshakeError): void {
    if (this.stopping) return
    this.log.warn({ peerId: err.peerId, peer: err.peer, code: err.code }, err.message)
    this.opts.refused(err)
    void (async () => {
      try {
        await stream?.close({ signal: AbortSignal.timeout(500) })
        await conn.close({ signal: AbortSignal.timeout(1000) })
      } catch (e) {
        conn.abort(e as Error)
      }
    })()
  }
}
