/**
 * The processes of a multi-process history: each start of a node is its own
 * process (a restarted node begins empty, with a new clock and sequence), so
 * the cache and event checkers reason per start. A start is named
 * `n<node>#<k>`: the k-th 'started' of that node in the history.
 */
import type { HistoryEntry } from '../cluster-processes.js'

export interface Starts {
  /** The start each entry of the history belongs to. */
  readonly of: ReadonlyMap<HistoryEntry, string>
  /** Starts still running when the history ends. */
  readonly alive: ReadonlySet<string>
  /** The start whose process had this pid. */
  readonly byPid: ReadonlyMap<number, string>
  /** Every start, in the order they began. */
  readonly order: readonly string[]
}

/** Entries are taken in the order the harness recorded them, which per node is the order its process reported them. */
export function processStarts (history: readonly HistoryEntry[]): Starts {
  const of = new Map<HistoryEntry, string>()
  const current = new Map<number, string>()
  const counts = new Map<number, number>()
  const alive = new Set<string>()
  const byPid = new Map<number, string>()
  const order: string[] = []
  for (const e of history) {
    if (e.type === 'started') {
      const k = (counts.get(e.node) ?? 0) + 1
      counts.set(e.node, k)
      const start = `n${e.node + 1}#${k}`
      current.set(e.node, start)
      alive.add(start)
      byPid.set(e.pid, start)
      order.push(start)
    }
    const start = current.get(e.node) ?? `n${e.node + 1}#0`
    of.set(e, start)
    if (e.type === 'exited') alive.delete(start)
  }
  return { of, alive, byPid, order }
}

/** The start a workload's tag names: its `s` is `${node id}.${pid}`. */
export function startOfTag (starts: Starts, s: string): string | undefined {
  return starts.byPid.get(Number(s.slice(s.lastIndexOf('.') + 1)))
}
