/**
 * Named errors of the gossip layer. Callers test for them with `instanceof`
 * or by the stable `name`/`code`; messages name both sides' values so an
 * operator reading one log line knows what to fix.
 */

/** A caller passed options the mesh does not accept (e.g. no cluster secret): the one class of the package, raft's. */
export { InvalidArgumentError } from '../raft/index.js'

/** The peer key file in the data directory exists but cannot be used. */
export class PeerKeyError extends Error {
  override readonly name = 'PeerKeyError'
  readonly code = 'ERR_PEER_KEY'
  readonly file: string

  constructor (file: string, message: string) {
    super(`${file}: ${message}`)
    this.file = file
  }
}

/**
 * The join handshake with a peer failed: the connection is refused. The
 * subclasses below are the refusals an operator must act on; this class
 * itself covers timeouts, malformed frames and conflicts.
 */
export class HandshakeError extends Error {
  override readonly name: string = 'HandshakeError'
  readonly code: string = 'ERR_HANDSHAKE'
  /** The peer's libp2p id. */
  readonly peerId: string
  /** The peer's node id when it got far enough to say it, else null. */
  readonly peer: string | null

  constructor (message: string, peerId: string, peer: string | null = null) {
    super(message)
    this.peerId = peerId
    this.peer = peer
  }
}

/** The peer runs a different app or raftmesh protocol version. Both must match exactly. */
export class VersionMismatchError extends HandshakeError {
  override readonly name = 'VersionMismatchError'
  override readonly code = 'ERR_VERSION_MISMATCH'
  readonly kind: 'app' | 'protocol'
  readonly local: string
  readonly remote: string

  constructor (kind: 'app' | 'protocol', peer: string, remote: string, local: string, peerId: string) {
    super(kind === 'app'
      ? `peer ${peer} runs app ${remote}, this cluster runs ${local}`
      : `peer ${peer} speaks raftmesh protocol ${remote}, this cluster speaks ${local}`, peerId, peer)
    this.kind = kind
    this.local = local
    this.remote = remote
  }
}

/** The peer holds the cluster secret but belongs to a differently named cluster. */
export class ClusterMismatchError extends HandshakeError {
  override readonly name = 'ClusterMismatchError'
  override readonly code = 'ERR_CLUSTER_MISMATCH'
  readonly local: string
  readonly remote: string

  constructor (peer: string, remote: string, local: string, peerId: string) {
    super(`peer ${peer} belongs to cluster "${remote}", this node belongs to cluster "${local}"`, peerId, peer)
    this.local = local
    this.remote = remote
  }
}

/** The peer claims a node id that a different live peer already holds. */
export class NodeIdConflictError extends HandshakeError {
  override readonly name = 'NodeIdConflictError'
  override readonly code = 'ERR_NODE_ID_CONFLICT'
}

/** A frame from a peer that is not what the protocol allows (shape, size, state). */
export class ProtocolFrameError extends Error {
  override readonly name = 'ProtocolFrameError'
  readonly code = 'ERR_PROTOCOL_FRAME'
}

/** The mesh node is stopped or was never started. */
export class NotStartedError extends Error {
  override readonly name = 'NotStartedError'
  readonly code = 'ERR_NOT_STARTED'
}

/**
 * Why a call could not reach its member: it is not a live member, it failed
 * or left while the call was pending, its stream broke, or no stream could
 * be opened. The request may or may not have run on the member (except for
 * `not-member` and `unreachable`: then it was never sent).
 */
export type PeerUnavailableReason = 'not-member' | 'failed' | 'left' | 'stream-closed' | 'unreachable'

/**
 * A call to a member was rejected at once because the member is not there
 * (see `reason`). Callers re-route (e.g. to a newly known leader) rather
 * than wait for a timeout.
 */
export class PeerUnavailableError extends Error {
  override readonly name = 'PeerUnavailableError'
  readonly code = 'ERR_PEER_UNAVAILABLE'
  /** The node id called. */
  readonly peer: string
  readonly reason: PeerUnavailableReason

  constructor (peer: string, reason: PeerUnavailableReason, detail: string, options?: { cause?: unknown }) {
    super(`member ${peer} is unavailable (${reason}): ${detail}`, options)
    this.peer = peer
    this.reason = reason
  }
}

/** No response within the call's `timeoutMs`. The handler may still have run. */
export class RpcTimeoutError extends Error {
  override readonly name = 'RpcTimeoutError'
  readonly code = 'ERR_RPC_TIMEOUT'
  readonly peer: string
  readonly method: string
  readonly timeoutMs: number

  constructor (peer: string, method: string, timeoutMs: number) {
    super(`call ${method} on member ${peer} got no response within ${timeoutMs} ms`)
    this.peer = peer
    this.method = method
    this.timeoutMs = timeoutMs
  }
}

/** The remote handler threw: its error's name, code and message, as the member reported them. */
export class RemoteCallError extends Error {
  override readonly name = 'RemoteCallError'
  readonly code = 'ERR_REMOTE_CALL'
  readonly peer: string
  readonly method: string
  /** The `name` of the error the handler threw (e.g. `NotLeaderError`). */
  readonly remoteName: string
  /** Its `code`, or '' when it had none. */
  readonly remoteCode: string

  constructor (peer: string, method: string, remoteName: string, remoteCode: string, message: string) {
    super(message)
    this.peer = peer
    this.method = method
    this.remoteName = remoteName
    this.remoteCode = remoteCode
  }
}

/** The member has no handler for the method. Nothing ran. */
export class UnknownMethodError extends Error {
  override readonly name = 'UnknownMethodError'
  readonly code = 'ERR_UNKNOWN_METHOD'
  readonly peer: string
  readonly method: string

  constructor (peer: string, method: string) {
    super(`member ${peer} has no handler for ${method}`)
    this.peer = peer
    this.method = method
  }
}

/**
 * A bound was reached and the call was refused before it ran: too many
 * calls pending or bytes queued towards the member (`where: 'local'`), or
 * too many of this node's calls already running on it (`where: 'remote'`).
 */
export class RpcOverloadedError extends Error {
  override readonly name = 'RpcOverloadedError'
  readonly code = 'ERR_RPC_OVERLOADED'
  readonly peer: string
  readonly where: 'local' | 'remote'

  constructor (peer: string, where: 'local' | 'remote', message: string) {
    super(message)
    this.peer = peer
    this.where = where
  }
}

/** The RPC endpoint was closed; its pending calls reject with this. */
export class RpcClosedError extends Error {
  override readonly name = 'RpcClosedError'
  readonly code = 'ERR_RPC_CLOSED'
}
