/**
 * What raft/ offers the layers above it (gossip/ and lib/). They import from
 * here only, so raft/'s files can be reorganised without touching them.
 */
export { RaftNode, type RaftNodeOptions, type ProposeOptions, type RaftNodeEvents } from './driver/node.js'
export type { RaftStatus, SoftState, Role } from './core/core.js'
export { FileLogStore, type FileLogStoreOptions } from './storage/wal.js'
export { MemoryLogStore, type LogStore } from './storage/log-store.js'
export type { StateMachine } from './driver/state-machine.js'
export type { Clock } from './driver/clock.js'
export type { Logger } from './logger.js'
export type { FileSystem, StoreFile } from './storage/file-system.js'
export { MemoryNetwork, type Transport } from './driver/transport.js'
export type { Message } from './core/messages.js'
export { EntryType, type ConfChange, type ConfigState, type Entry, type NodeId, type Snapshot } from './types.js'
export {
  ConfigChangeError, CorruptLogError, InvalidArgumentError, LeadershipLostError, NotLeaderError, StoppedError, StorageFailedError, TransferInProgressError
} from './errors.js'
