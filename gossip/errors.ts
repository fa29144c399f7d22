/**
 * Named errors of the gossip layer. Callers test for them with `instanceof`
 * or by the stable `name`/`code`; messages name both sides' values so an
 * operator reading one log line knows what to fix.
 */

/** A caller passed options the mesh does not accept (e.g. no cluster secret). */
export class InvalidArgumentError extends Error {
  override readonly name: string = 'InvalidArgumentError'
  readonly code: string = 'ERR_INVALID_ARGUMENT'
}

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
