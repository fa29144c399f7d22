/**
 * What raft/ offers the layers above it (gossip/ and lib/). They import from
 * here only, so raft/'s files can be reorganised without touching them.
 */
export { RaftNode, type RaftNodeOptions, type ProposeOptions, type RaftNodeEvents } from './node.js'
export type { RaftStatus, SoftState, Role } from './core.js'
export { FileLogStore, type FileLogStoreOptions } from './wal.js'
export { MemoryLogStore, type LogStore } from './log-store.js'
export type { StateMachine } from './state-machine.js'
export type { Clock } from './clock.js'
export type { Logger } from './logger.js'
export type { FileSystem, StoreFile } from './file-system.js'
export { MemoryNetwork, type Transport } from './transport.js'
export type { Message } from './messages.js'
export { EntryType, type ConfChange, type ConfigState, type Entry, type NodeId, type Snapshot } from './types.js'
export {
  ConfigChangeError, CorruptLogError, InvalidArgumentError, LeadershipLostError, NotLeaderError, StoppedError, StorageFailedError, TransferInProgressError
} from './errors.js'
