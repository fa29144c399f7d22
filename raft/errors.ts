/**
 * Named errors callers can test for with `instanceof` or by `code`.
 */
import type { NodeId } from './types.js'

/** A proposal or read reached a node that is not the leader. */
export class NotLeaderError extends Error {
  override readonly name = 'NotLeaderError'
  readonly code = 'ERR_NOT_LEADER'
  /** The leader this node knows of, or null when it knows none. */
  readonly leader: NodeId | null

  constructor (leader: NodeId | null) {
    super(leader === null ? 'not the leader; no leader is known' : `not the leader; the leader is ${leader}`)
    this.leader = leader
  }
}

/** A proposal was appended but a new leader overwrote it before it committed. */
export class LeadershipLostError extends Error {
  override readonly name = 'LeadershipLostError'
  readonly code = 'ERR_LEADERSHIP_LOST'
  constructor (message = 'leadership was lost before the entry committed; its outcome is unknown') {
    super(message)
  }
}

/** A membership change was refused (another is pending, or it makes no sense). */
export class ConfigChangeError extends Error {
  override readonly name = 'ConfigChangeError'
  readonly code = 'ERR_CONFIG_CHANGE'
}

/** A proposal was refused because the leader is handing leadership over. */
export class TransferInProgressError extends Error {
  override readonly name = 'TransferInProgressError'
  readonly code = 'ERR_TRANSFER_IN_PROGRESS'
  constructor () {
    super('leadership transfer in progress; retry on the new leader')
  }
}

/** The durable log is damaged somewhere recovery must not guess about. */
export class CorruptLogError extends Error {
  override readonly name = 'CorruptLogError'
  readonly code = 'ERR_CORRUPT_LOG'
  readonly file: string
  readonly offset: number

  constructor (file: string, offset: number, reason: string) {
    super(`corrupt raft log ${file} at offset ${offset}: ${reason}`)
    this.file = file
    this.offset = offset
  }
}

/** The log store hit an I/O error and accepts no more writes: what reached the disk is unknown. */
export class StorageFailedError extends Error {
  override readonly name = 'StorageFailedError'
  readonly code = 'ERR_STORAGE_FAILED'
}

/** A caller passed a value the API does not accept. */
export class InvalidArgumentError extends Error {
  override readonly name = 'InvalidArgumentError'
  readonly code = 'ERR_INVALID_ARGUMENT'
}

/** The node or store was stopped or closed. */
export class StoppedError extends Error {
  override readonly name = 'StoppedError'
  readonly code = 'ERR_STOPPED'
  constructor (what = 'raft node') {
    super(`${what} is stopped`)
  }
}
