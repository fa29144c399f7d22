/**
 * The raftmesh package: `import { Cluster } from 'raftmesh'`.
 */
export { Cluster, type ClusterEvents, type Lock } from './cluster.js'
export { Election, type ElectionEvents } from './election.js'
export { Queue, type QueueOptions, type EnqueueOptions, type ClaimOptions, type QueueStats, type DeadItem } from './queues/queue.js'
export type { Job } from './queues/job.js'
export type { Processor, ProcessOptions } from './queues/processor.js'
export { Cache, type CacheOptions, type CacheStats } from './cache/cache.js'
export { EventBus, type ClusterEvent, type EventHandler, type EventGap, type EventOverflow } from './events/events.js'
export type { AcquireOptions, LockHandle } from './lock-handle.js'
export { PANIC_EXIT_CODE, type ClusterOptions, type PanicInfo } from './options.js'
export type { ClusterStatus, MemberStatus } from './status.js'
export type { ClusterHttpHandler, HttpHandlerOptions } from './http/handler.js'
export type { TimelineEntry, TimelineEvent } from './timeline.js'
export type { Logger } from '../gossip/logger.js'
export * from './errors.js'
