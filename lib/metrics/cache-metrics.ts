/** Named caches (`cluster.cache`): size, hit rate, and the replication traffic behind them. */
import type { Registry } from 'prom-client'
import type { CacheStats } from '../cache/cache.js'
import { labelledCounter, labelledGauge, perScrape, type Labelled } from './collected.js'

export function registerCacheMetrics (registry: Registry, caches: () => Iterable<readonly [string, CacheStats]>): void {
  const all = perScrape(() => [...caches()])
  const each = (read: (s: CacheStats) => number) => (): Labelled => all().map(([cache, s]) => [{ cache }, read(s)] as const)
  labelledGauge(registry, 'raftmesh_cache_entries', 'Entries held by this node.', ['cache'], each(s => s.entries))
  labelledCounter(registry, 'raftmesh_cache_hits_total', 'Reads that found a value.', ['cache'], each(s => s.hits))
  labelledCounter(registry, 'raftmesh_cache_misses_total', 'Reads that found nothing.', ['cache'], each(s => s.misses))
  labelledCounter(registry, 'raftmesh_cache_loads_total', 'Loader calls made by getOrLoad.', ['cache'], each(s => s.loads))
  labelledCounter(registry, 'raftmesh_cache_updates_sent_total', 'Updates and invalidations this node broadcast.', ['cache'], each(s => s.channel.published))
  labelledCounter(registry, 'raftmesh_cache_updates_received_total', 'Updates and invalidations received from other nodes.', ['cache'], each(s => s.updatesReceived))
  labelledCounter(registry, 'raftmesh_cache_repaired_total', 'Writes of other nodes taken in by anti-entropy, not by gossip.', ['cache'], each(s => s.repaired))
  labelledCounter(registry, 'raftmesh_cache_stale_updates_total', 'Remote writes that lost to a newer version here.', ['cache'], each(s => s.staleUpdates))
  labelledCounter(registry, 'raftmesh_cache_rejected_total', 'Cache messages dropped as invalid.', ['cache'], each(s => s.rejected))
  labelledCounter(registry, 'raftmesh_cache_gossip_gaps_total', 'Gaps in a publisher\'s sequence seen on the cache\'s channel.', ['cache'], each(s => s.channel.gaps))
  labelledCounter(registry, 'raftmesh_cache_dropped_all_total', 'Times every local copy was dropped (invalidation mode, after a cut).', ['cache'], each(s => s.droppedAll))
}
