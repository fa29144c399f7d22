/**
 * Safety properties of Raft (thesis Figure 3.2), checked incrementally as the
 * simulation runs so that a violation names the step that caused it.
 */
import type { RaftCore } from '../core.js'
import type { Entry, NodeId } from '../types.js'

function fingerprint (e: Entry): string {
  return `${e.type}:${Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString('base64')}`
}

export class InvariantChecker {
  readonly violations: string[] = []
  /** Election safety: the leader of each term. */
  private readonly leaders = new Map<number, NodeId>()
  /** Log matching: every (index, term) ever in any log, with its content and predecessor's term. */
  private readonly entries = new Map<string, { fp: string, prevTerm: number | undefined }>()
  /** State machine safety / leader completeness: what was applied at each index. */
  private readonly applied = new Map<number, { term: number, fp: string }>()
  private maxApplied = 0
  private readonly checkedLeaders = new Set<string>()
  private readonly lastCommit = new Map<string, number>()

  private fail (msg: string): void {
    if (this.violations.length < 20) this.violations.push(msg)
  }

  /** Called with entries a node is about to persist, in its log context. */
  onEntries (node: NodeId, core: RaftCore, entries: readonly Entry[]): void {
    for (const e of entries) {
      const key = `${e.index}/${e.term}`
      const prevTerm = e.index - 1 >= core.log.snapshotIndex ? core.log.term(e.index - 1) : undefined
      const fp = fingerprint(e)
      const seen = this.entries.get(key)
      if (seen === undefined) {
        this.entries.set(key, { fp, prevTerm })
        continue
      }
      if (seen.fp !== fp) this.fail(`log matching: ${node} has a different entry at ${key}`)
      if (seen.prevTerm !== undefined && prevTerm !== undefined && seen.prevTerm !== prevTerm) {
        this.fail(`log matching: ${node} has entry ${key} after term ${prevTerm}, elsewhere after term ${seen.prevTerm}`)
      }
    }
  }

  /** Called for every entry a node applies to its state machine. */
  onApply (node: NodeId, e: Entry): void {
    const fp = fingerprint(e)
    const prev = this.applied.get(e.index)
    if (prev === undefined) {
      this.applied.set(e.index, { term: e.term, fp })
      this.maxApplied = Math.max(this.maxApplied, e.index)
    } else if (prev.fp !== fp || prev.term !== e.term) {
      this.fail(`state machine safety: ${node} applied term ${e.term} at index ${e.index}, another node applied term ${prev.term}`)
    }
  }

  /** Called after every simulation step with every live core. */
  afterStep (cores: ReadonlyArray<{ incarnation: string, core: RaftCore }>): void {
    for (const { incarnation, core } of cores) {
      const commit = core.log.committed
      const before = this.lastCommit.get(incarnation) ?? 0
      if (commit < before) this.fail(`commit index of ${core.id} went back from ${before} to ${commit}`)
      this.lastCommit.set(incarnation, commit)
      if (core.role !== 'leader') continue
      const holder = this.leaders.get(core.term)
      if (holder === undefined) this.leaders.set(core.term, core.id)
      else if (holder !== core.id) this.fail(`election safety: ${holder} and ${core.id} both led term ${core.term}`)
      const key = `${core.id}@${core.term}`
      if (!this.checkedLeaders.has(key)) {
        this.checkedLeaders.add(key)
        this.checkLeaderCompleteness(core)
      }
    }
  }

  /** §3.6.3: a leader's log holds every entry committed in earlier terms. */
  private checkLeaderCompleteness (core: RaftCore): void {
    if (core.log.lastIndex() < this.maxApplied) {
      this.fail(`leader completeness: ${core.id} leads term ${core.term} with last index ${core.log.lastIndex()} < applied ${this.maxApplied}`)
      return
    }
    for (let i = core.log.snapshotIndex + 1; i <= this.maxApplied; i++) {
      const a = this.applied.get(i)
      if (a !== undefined && core.log.term(i) !== a.term) {
        this.fail(`leader completeness: ${core.id} leads term ${core.term} with term ${String(core.log.term(i))} at ${i}, committed term ${a.term}`)
        return
      }
    }
  }
}
