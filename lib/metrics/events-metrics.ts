/** Cluster events (`cluster.events`): what was published, received, repaired and lost. */
import type { Registry } from 'prom-client'
import type { EventStats } from '../events/events.js'
import { collectedCounter, collectedGauge, perScrape } from './collected.js'

export function registerEventMetrics (registry: Registry, stats: () => EventStats): void {
  const s = perScrape(stats)
  collectedGauge(registry, 'raftmesh_events_publishers', 'Other publishers whose sequence this node follows.', () => s().publishers)
  collectedCounter(registry, 'raftmesh_events_published_total', 'Events this node published.', () => s().published)
  collectedCounter(registry, 'raftmesh_events_received_total', 'Events accepted from other nodes.', () => s().received)
  collectedCounter(registry, 'raftmesh_events_duplicates_total', 'Events received again and dropped.', () => s().duplicates)
  collectedCounter(registry, 'raftmesh_events_repaired_total', 'Events fetched from a publisher\'s buffer after a gap.', () => s().repaired)
  collectedCounter(registry, 'raftmesh_events_lost_total', 'Events reported lost (a gap that could not be repaired).', () => s().lost)
  collectedCounter(registry, 'raftmesh_events_rejected_total', 'Events dropped as forged, malformed or from an unknown publisher.', () => s().forged + s().malformed + s().unknownPublisher)
  collectedCounter(registry, 'raftmesh_events_overflowed_total', 'Events dropped for a subscriber whose queue was full.', () => s().overflowed)
  collectedCounter(registry, 'raftmesh_events_handler_errors_total', 'Subscriber handlers that threw.', () => s().handlerErrors)
}
