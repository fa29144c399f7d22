/**
 * What a node shows about itself: its Prometheus registry, its timeline of
 * cluster events, and the HTTP handlers that serve them. Both start with
 * the Cluster, so that a scrape or a dashboard opened after a fault still
 * shows the fault. Each metrics area is one file under metrics/, given
 * only the readings it needs.
 */
import type { EventEmitter } from 'node:events'
import { Registry } from 'prom-client'
import type { GossipLinkStats } from '../gossip/gossip-links.js'
import type { Member } from '../gossip/membership.js'
import type { MeshRpcStats } from '../gossip/rpc.js'
import type { RaftTransportStats } from '../gossip/raft-transport.js'
import type { RaftStatus } from '../raft/index.js'
import type { CacheStats } from './cache/cache.js'
import type { ClusterEvents } from './cluster.js'
import type { CoordinationState } from './coordination/state.js'
import type { EventStats } from './events/events.js'
import { createHttpHandler, type ClusterHttpHandler, type HttpHandlerOptions } from './http/handler.js'
import { registerCacheMetrics } from './metrics/cache-metrics.js'
import { registerCoordinationMetrics, type CoordinationMetrics } from './metrics/coordination-metrics.js'
import { registerEventMetrics } from './metrics/events-metrics.js'
import { registerMeshMetrics } from './metrics/mesh-metrics.js'
import { registerRaftMetrics } from './metrics/raft-metrics.js'
import { registerWorkMetrics } from './metrics/work-metrics.js'
import type { ClusterStatus } from './status.js'
import { Timeline } from './timeline.js'

export interface MonitorSources {
  readonly nodeId: string
  readonly cluster: EventEmitter<ClusterEvents>
  readonly state: CoordinationState
  raft(): RaftStatus
  status(): ClusterStatus
  members(): readonly Member[]
  rpc(): MeshRpcStats
  transport(): RaftTransportStats
  badControlFrames(): number
  gossipLinks(): GossipLinkStats
  events(): EventStats
  caches(): Iterable<readonly [string, CacheStats]>
}

/** Timeline entries kept for the dashboard. */
const TIMELINE_ENTRIES = 500

export class ClusterMonitor {
  readonly registry = new Registry()
  readonly timeline = new Timeline(TIMELINE_ENTRIES)
  private readonly coordination: CoordinationMetrics
  private readonly handlers = new Set<{ close(): void }>()
  private stopped = false

  constructor (private readonly s: MonitorSources) {
    // Every node's series carry its id: several nodes may share a process (and a scrape target).
    this.registry.setDefaultLabels({ node: s.nodeId })
    const raftMetrics = registerRaftMetrics(this.registry, () => s.raft())
    this.coordination = registerCoordinationMetrics(this.registry, () => s.status())
    registerMeshMetrics(this.registry, s)
    registerEventMetrics(this.registry, () => s.events())
    registerCacheMetrics(this.registry, () => s.caches())
    registerWorkMetrics(this.registry, () => s.status())

    const { timeline, coordination } = this
    const { leader, term } = s.raft()
    if (leader !== null) timeline.record({ kind: 'leader', leader, term })
    s.cluster.on('leader', e => {
      raftMetrics.leaderChanged()
      timeline.record({ kind: 'leader', leader: e.leader, term: e.term })
    })
    s.cluster.on('member-up', e => { timeline.record({ kind: 'member-up', member: e.id }) })
    s.cluster.on('member-down', e => { timeline.record({ kind: 'member-down', member: e.id, reason: e.reason }) })
    s.cluster.on('panic', e => { timeline.record({ kind: 'panic', reason: e.reason }) })
    s.state.on('granted', g => {
      coordination.lockGranted()
      timeline.record({ kind: 'lock-granted', lockKind: g.kind, name: g.name, node: s.state.session(g.session)?.node ?? null, fence: String(g.fence) })
    })
    s.state.on('session-ended', e => {
      coordination.sessionEnded(e.reason)
      timeline.record({ kind: 'session-ended', node: e.node, reason: e.reason })
    })
  }

  async timeAcquire<T> (acquire: () => Promise<T>): Promise<T> {
    return await this.coordination.timeAcquire(acquire)
  }

  handler (opts: HttpHandlerOptions = {}): ClusterHttpHandler {
    const h = createHttpHandler({
      status: () => this.stopped ? null : this.s.status(),
      timeline: this.timeline,
      metrics: async () => ({ contentType: this.registry.contentType, text: await this.registry.metrics() })
    }, opts)
    if (this.stopped) h.close()
    else this.handlers.add(h)
    return h.handler
  }

  /** The node is stopping: probes fail from now on and open event streams end (a server cannot close while they stay open). */
  close (): void {
    this.stopped = true
    for (const h of this.handlers) h.close()
    this.handlers.clear()
  }
}
