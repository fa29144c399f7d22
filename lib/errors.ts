/**
 * Every error a caller of the Cluster API can see, each with a stable `name`
 * and `code` to test for. Errors of the layers below that a caller can meet
 * are re-exported from here, so the package has one class per condition.
 */
export { CorruptLogError, InvalidArgumentError, LeadershipLostError, NotLeaderError } from '../raft/index.js'
export { CacheEntryTooLargeError } from './cache/errors.js'
export { EventTooLargeError } from './events/errors.js'
export { ClusterMismatchError, HandshakeError, NodeIdConflictError, PeerKeyError, VersionMismatchError } from '../gossip/errors.js'

/** The cluster was stopped (or is stopping): the call cannot be served. */
export class ClusterStoppedError extends Error {
  override readonly name = 'ClusterStoppedError'
  readonly code = 'ERR_CLUSTER_STOPPED'
  constructor (message = 'the cluster node is stopped') {
    super(message)
  }
}

/** This node is not part of a majority, so the call cannot be decided. */
export class QuorumLostError extends Error {
  override readonly name = 'QuorumLostError'
  readonly code = 'ERR_QUORUM_LOST'
}

/** A call did not complete in its `timeoutMs`; a write's outcome is then unknown. */
export class TimeoutError extends Error {
  override readonly name: string = 'TimeoutError'
  readonly code: string = 'ERR_TIMEOUT'
}

/** `acquire` or `campaign` waited `timeoutMs` without being granted. */
export class LockTimeoutError extends TimeoutError {
  override readonly name = 'LockTimeoutError'
  override readonly code = 'ERR_LOCK_TIMEOUT'
}

/** This node's session ended (expired on the log, or the node stopped): its locks are gone. */
export class SessionLostError extends Error {
  override readonly name = 'SessionLostError'
  readonly code = 'ERR_SESSION_LOST'
}

/** The holder's lease is no longer certain (see LockHandle.signal): the lock may be granted elsewhere. */
export class LockLostError extends Error {
  override readonly name = 'LockLostError'
  readonly code = 'ERR_LOCK_LOST'
}

/** A queue item's claim ended (visibility passed, its session ended, or it was acked or nacked already): the item may be with another worker. */
export class ClaimExpiredError extends Error {
  override readonly name = 'ClaimExpiredError'
  readonly code = 'ERR_CLAIM_EXPIRED'
}

/** An enqueued payload is larger than the queue accepts. */
export class QueueItemTooLargeError extends Error {
  override readonly name = 'QueueItemTooLargeError'
  readonly code = 'ERR_QUEUE_ITEM_TOO_LARGE'
}

/** The queue holds as many items as it may (MAX_QUEUE_ITEMS): the enqueue was refused. */
export class QueueFullError extends Error {
  override readonly name = 'QueueFullError'
  readonly code = 'ERR_QUEUE_FULL'
}

/** A file is larger than the replicated file store accepts. */
export class FileTooLargeError extends Error {
  override readonly name = 'FileTooLargeError'
  readonly code = 'ERR_FILE_TOO_LARGE'
}

/** The replicated file store would exceed its total size: the write was refused. */
export class FileStoreFullError extends Error {
  override readonly name = 'FileStoreFullError'
  readonly code = 'ERR_FILE_STORE_FULL'
}
