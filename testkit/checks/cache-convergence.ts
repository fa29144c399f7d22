/**
 * Checks a replicated cache after the faults healed and every node ran
 * anti-entropy with every member (testkit/cluster-processes.ts `cacheState`):
 *
 * - converged: every node holds the same entries;
 * - no invented value: every value held was written by the workload (its
 *   `cache-set` resolved, or it was the one write in flight when its
 *   process died, which may have been stamped before the answer came).
 *
 * Values are `<node id>.<pid>.<n>` (testkit/cluster-node.ts), n counting each
 * process's writes.
 */
import type { CacheState, HistoryEntry } from '../cluster-processes.js'

/** One node's final copy: the node's index and what `cacheState` answered. */
export interface FinalCache {
  readonly node: number
  readonly state: CacheState
}

/** Every violation found, each a sentence naming the nodes and keys; empty when the caches agree. */
export function checkCacheConvergence (history: readonly HistoryEntry[], finals: readonly FinalCache[], cache: string): string[] {
  const violations: string[] = []
  const written = new Set<string>()
  const lastN = new Map<string, number>()
  for (const e of history) {
    if (e.type !== 'cache-set' || e.cache !== cache) continue
    written.add(e.value)
    const { writer, n } = splitValue(e.value)
    lastN.set(writer, Math.max(lastN.get(writer) ?? 0, n))
  }
  const [first, ...rest] = finals
  if (first === undefined) return [`no node reported its copy of cache ${cache}`]
  const copy = (f: FinalCache): Map<string, string> => new Map(f.state.entries.map(([k, v]) => [k, v]))
  const base = copy(first)
  for (const f of rest) {
    const other = copy(f)
    const keys = new Set([...base.keys(), ...other.keys()])
    const differ = [...keys].filter(k => base.get(k) !== other.get(k)).sort()
    if (differ.length > 0) {
      violations.push(`cache ${cache}: n${f.node + 1} disagrees with n${first.node + 1} on ${differ.length} keys after heal: ${differ.slice(0, 5).map(k => `${k} (${other.get(k) ?? 'absent'} vs ${base.get(k) ?? 'absent'})`).join(', ')}${differ.length > 5 ? ' ...' : ''}`)
    }
  }
  for (const f of finals) {
    for (const [k, v] of f.state.entries) {
      if (written.has(v)) continue
      const { writer, n } = splitValue(v)
      // The write a SIGKILL interrupted between its stamp and its report.
      if (n === (lastN.get(writer) ?? 0) + 1) continue
      violations.push(`cache ${cache}: n${f.node + 1} holds ${k} = ${v}, which no write of the workload produced`)
    }
  }
  return violations
}

function splitValue (value: string): { writer: string, n: number } {
  const dot = value.lastIndexOf('.')
  return { writer: value.slice(0, dot), n: Number(value.slice(dot + 1)) }
}
