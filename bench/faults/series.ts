/**
 * What a fault run's history says about performance: latency of each
 * completed operation over time, throughput per second, and the failover
 * time of each fault that took the leader away (until another node saw a
 * new leader), and how fast each killed node came back.
 */
import type { HistoryEntry } from '../../testkit/cluster-processes.js'
import type { FaultWindow } from './nemesis.js'

export interface LatencyPoint {
  /** Seconds since the run began. */
  readonly t: number
  readonly op: 'lock acquire' | 'enqueue'
  readonly ms: number
}

export interface ThroughputPoint {
  readonly t: number
  readonly op: string
  readonly count: number
}

export interface Failover {
  readonly kind: FaultWindow['kind']
  /** From the fault to the first moment another node saw a new leader. */
  readonly ms: number
}

/** A killed node's way back, from the moment its restarted process called Cluster.start. */
export interface Rejoin {
  readonly kind: FaultWindow['kind']
  /** Until every other live node saw it join the mesh (member-up). */
  readonly meshMs: number | null
  /** Until every other live node's gossipsub saw it subscribe (its gossip topics are live again). */
  readonly gossipMs: number | null
  /** Until its Cluster.start resolved: a member again, caught up with the log. */
  readonly joinedMs: number | null
}

/** What counts as one completed operation of each kind, for throughput. */
const COMPLETED: Partial<Record<HistoryEntry['type'], string>> = {
  granted: 'lock grants',
  enqueued: 'enqueues',
  'job-acked': 'queue acks',
  'task-run': 'task runs',
  'cache-write': 'cache writes',
  'event-published': 'events published'
}

export function latencies (history: readonly HistoryEntry[], t0: number): LatencyPoint[] {
  const out: LatencyPoint[] = []
  const sent = new Map<string, number>()
  for (const e of history) {
    if (e.type === 'granted' && e.valid) out.push({ t: (e.at - t0) / 1000, op: 'lock acquire', ms: e.at - e.requestedAt })
    else if (e.type === 'enqueue-sent') sent.set(e.id, e.at)
    else if (e.type === 'enqueued') {
      const at = sent.get(e.id)
      if (at !== undefined) out.push({ t: (e.at - t0) / 1000, op: 'enqueue', ms: e.at - at })
    }
  }
  return out
}

export function throughput (history: readonly HistoryEntry[], t0: number): ThroughputPoint[] {
  const buckets = new Map<string, number>()
  for (const e of history) {
    const op = COMPLETED[e.type]
    if (op === undefined) continue
    const key = `${Math.floor((e.at - t0) / 1000)}|${op}`
    buckets.set(key, (buckets.get(key) ?? 0) + 1)
  }
  return [...buckets].map(([k, count]) => {
    const [t, op] = k.split('|')
    return { t: Number(t), op, count }
  }).sort((a, b) => a.t - b.t)
}

/** Failover times of the faults that took the leader away and were followed by a new leader within `withinMs`. */
export function failovers (history: readonly HistoryEntry[], windows: readonly FaultWindow[], nodeIds: readonly string[], withinMs = 30_000): Failover[] {
  const out: Failover[] = []
  for (const w of windows) {
    if (!w.wasLeader) continue
    const old = nodeIds[w.node]
    const seen = history.find(e => e.type === 'leader' && e.node !== w.node && e.at > w.from && e.at < w.from + withinMs && e.leader !== null && e.leader !== old)
    if (seen !== undefined) out.push({ kind: w.kind, ms: seen.at - w.from })
  }
  return out
}

/**
 * The rejoin of every node a kill took away. "Every other node" is those
 * that reported anything after the restart (a node down at that moment
 * cannot see anything); null when one of them never saw it within `withinMs`.
 */
export function rejoins (history: readonly HistoryEntry[], windows: readonly FaultWindow[], nodeIds: readonly string[], peerIds: readonly string[], withinMs = 30_000): Rejoin[] {
  const out: Rejoin[] = []
  for (const w of windows) {
    if (w.kind !== 'kill' && w.kind !== 'kill-torn') continue
    const start = history.find(e => e.node === w.node && e.type === 'cluster-starting' && e.at > w.from)
    if (start === undefined) continue
    const until = start.at + withinMs
    const after = (e: HistoryEntry): boolean => e.at >= start.at && e.at <= until
    const others = [...new Set(history.filter(e => e.node !== w.node && after(e)).map(e => e.node))]
    const allSaw = (saw: (e: HistoryEntry) => boolean): number | null => {
      let last = start.at
      for (const j of others) {
        const seen = history.find(e => e.node === j && after(e) && saw(e))
        if (seen === undefined) return null
        last = Math.max(last, seen.at)
      }
      return others.length === 0 ? null : last - start.at
    }
    const joined = history.find(e => e.node === w.node && e.type === 'cluster-joined' && after(e))
    out.push({
      kind: w.kind,
      meshMs: allSaw(e => e.type === 'member-up' && e.id === nodeIds[w.node]),
      gossipMs: allSaw(e => e.type === 'gossip-subscribed' && e.peerId === peerIds[w.node]),
      joinedMs: joined === undefined ? null : joined.at - start.at
    })
  }
  return out
}
