/**
 * Safety properties of Raft (thesis Figure 3.2 and the rules behind them),
 * checked as the simulation runs so that a violation names the step that
 * caused it:
 * - election safety: one leader per term;
 * - log matching: an (index, term) pair names one entry, after one predecessor;
 * - leader completeness: a leader holds every entry committed before its term;
 * - state machine safety: every node applies the same entry at an index,
 *   and reaches the same application state after it;
 * - commit indexes never go back within an incarnation;
 * - durability: a leader commits only what a majority holds durably; no vote
 *   or acknowledgement is sent for state that is not durable; a restart
 *   recovers every committed entry and the term and vote it promised;
 * - membership: at most one uncommitted config entry in a leader's log, and
 *   none of a leader's own term before it committed an entry of that term.
 */
import type { RaftCore } from '../raft/core/core.js'
import type { RecoveredState } from '../raft/storage/log-store.js'
import type { Message } from '../raft/core/messages.js'
import { EntryType, type Entry, type NodeId } from '../raft/types.js'
import type { DurableView } from './durable-view.js'

function fingerprint (e: Entry): string {
  return `${e.type}:${Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString('base64')}`
}

/** A live incarnation as the checker sees it. */
export interface Live {
  readonly incarnation: string
  readonly core: RaftCore
}

export class InvariantChecker {
  readonly violations: string[] = []
  private readonly leaders = new Map<number, NodeId>()
  private readonly entries = new Map<string, { fp: string, prevTerm: number | undefined }>()
  /** What was applied (committed) at each index, by anyone. */
  private readonly applied = new Map<number, { term: number, fp: string }>()
  /** The application state after each index, from the first node that applied it. */
  private readonly states = new Map<number, string>()
  private maxApplied = 0
  private readonly checkedLeaders = new Set<string>()
  private readonly lastCommit = new Map<string, number>()
  private readonly lastApplied = new Map<string, number>()
  /** Per leader incarnation and term: the last index checked for membership rules. */
  private readonly configChecked = new Map<string, number>()

  constructor (private readonly viewOf: (id: NodeId) => DurableView) {}

  fail (msg: string): void {
    if (this.violations.length < 20) this.violations.push(msg)
  }

  /** Entries a node is about to persist, in its log's context. */
  onEntries (node: NodeId, core: RaftCore, entries: readonly Entry[]): void {
    for (const e of entries) {
      const prevTerm = e.index - 1 >= core.log.snapshotIndex ? core.log.term(e.index - 1) : undefined
      this.noteEntry(node, e, prevTerm)
    }
  }

  private noteEntry (node: NodeId, e: Entry, prevTerm: number | undefined): void {
    const key = `${e.index}/${e.term}`
    const fp = fingerprint(e)
    const seen = this.entries.get(key)
    if (seen === undefined) {
      this.entries.set(key, { fp, prevTerm })
      return
    }
    if (seen.fp !== fp) this.fail(`log matching: ${node} has a different entry at ${key}`)
    if (seen.prevTerm !== undefined && prevTerm !== undefined && seen.prevTerm !== prevTerm) {
      this.fail(`log matching: ${node} has entry ${key} after term ${prevTerm}, elsewhere after term ${seen.prevTerm}`)
    }
  }

  /** An entry committed and applied by some node; `state` is its state machine's state after it, when known. */
  onApply (node: NodeId, e: Entry, state?: string): void {
    if (state !== undefined) {
      const seen = this.states.get(e.index)
      if (seen === undefined) this.states.set(e.index, state)
      else if (seen !== state) this.fail(`state machines disagree: after entry ${e.index}, ${node} holds ${state}, another node ${seen}`)
    }
    const fp = fingerprint(e)
    const prev = this.applied.get(e.index)
    if (prev === undefined) {
      this.applied.set(e.index, { term: e.term, fp })
      this.maxApplied = Math.max(this.maxApplied, e.index)
    } else if (prev.fp !== fp || prev.term !== e.term) {
      this.fail(`state machine safety: ${node} applied term ${e.term} at index ${e.index}, another node applied term ${prev.term}`)
    }
  }

  /** A restart recovered `state`; `promised` is what the store had promised before the crash. */
  onRecovered (node: NodeId, state: RecoveredState, promised: DurableView): void {
    const hs = state.hardState
    if (hs.term < promised.term || (hs.term === promised.term && promised.vote !== null && hs.vote !== promised.vote)) {
      this.fail(`durability: ${node} recovered term ${hs.term} vote ${String(hs.vote)} after promising term ${promised.term} vote ${String(promised.vote)}`)
    }
    const snapIndex = state.snapshot?.meta.index ?? 0
    if (snapIndex < promised.snapshotIndex) this.fail(`durability: ${node} recovered snapshot ${snapIndex} after promising snapshot ${promised.snapshotIndex}`)
    const recovered = new Map(state.entries.map(e => [e.index, e.term]))
    for (const [index, term] of promised.entries()) {
      if (this.applied.get(index)?.term !== term || index <= snapIndex) continue
      if (recovered.get(index) !== term) this.fail(`durability: ${node} lost committed entry ${index}/${term} in a crash`)
    }
    let prevTerm: number | undefined = state.snapshot?.meta.term ?? 0
    for (const e of state.entries) {
      this.noteEntry(node, e, prevTerm)
      prevTerm = e.term
    }
  }

  /**
   * A message leaves `core`'s node, whose store promised `view`; `leader` is
   * the core it is addressed to when that core leads the message's term.
   */
  onSend (m: Message, core: RaftCore, view: DurableView, leader: RaftCore | null): void {
    if (m.type === 'VoteResp' && !m.reject && !(view.term > m.term || (view.term === m.term && view.vote === m.to))) {
      this.fail(`durability: ${m.from} granted its vote in term ${m.term} to ${m.to} before it was durable (durable: term ${view.term} vote ${String(view.vote)})`)
    }
    if (m.type === 'AppendResp' && !m.reject) {
      const term = core.log.term(m.index)
      if (view.term < m.term || (term !== undefined && !view.holds(m.index, term))) {
        this.fail(`durability: ${m.from} acknowledged ${m.index} in term ${m.term} before it was durable (durable: term ${view.term}, last index ${view.lastIndex})`)
      }
      // An acknowledgement claims the follower's log matches the leader's through `index` (§3.5).
      const leaderTerm = leader?.log.term(m.index)
      if (leader !== null && term !== undefined && (m.index > leader.log.lastIndex() || (leaderTerm !== undefined && leaderTerm !== term))) {
        this.fail(`log matching: ${m.from} acknowledged ${m.index} (term ${term} there) to ${leader.id}, whose log has ${String(leaderTerm)} there and ends at ${leader.log.lastIndex()}`)
      }
    }
  }

  /** After every simulation step, with every live incarnation. */
  afterStep (live: readonly Live[]): void {
    for (const { incarnation, core } of live) {
      const commit = core.log.committed
      const before = this.lastCommit.get(incarnation) ?? commit
      if (commit < before) this.fail(`commit index of ${core.id} went back from ${before} to ${commit}`)
      this.lastCommit.set(incarnation, commit)
      this.noteApplied(incarnation, core)
      if (core.role !== 'leader') continue
      const holder = this.leaders.get(core.term)
      if (holder === undefined) this.leaders.set(core.term, core.id)
      else if (holder !== core.id) this.fail(`election safety: ${holder} and ${core.id} both led term ${core.term}`)
      const key = `${incarnation}@${core.term}`
      if (!this.checkedLeaders.has(key)) {
        this.checkedLeaders.add(key)
        this.checkLeaderCompleteness(core)
      }
      if (commit > before) this.checkCommitDurable(core)
      this.checkMembership(key, core)
    }
  }

  private noteApplied (incarnation: string, core: RaftCore): void {
    const from = this.lastApplied.get(incarnation) ?? core.log.snapshotIndex
    const to = core.log.applied
    for (let i = Math.max(from, core.log.snapshotIndex) + 1; i <= to; i++) {
      const e = core.log.entry(i)
      if (e !== undefined) this.onApply(core.id, e)
    }
    this.lastApplied.set(incarnation, Math.max(from, to))
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

  /** A commit is only as good as the majority that holds the entry durably (§3.5, §11.2). */
  private checkCommitDurable (core: RaftCore): void {
    const index = core.log.committed
    const term = core.log.term(index)
    if (term === undefined) return
    const voters = core.config.voters
    const holding = voters.filter(v => this.viewOf(v).holds(index, term)).length
    if (holding * 2 <= voters.length) {
      this.fail(`durability: ${core.id} committed ${index}/${term} in term ${core.term} but only ${holding} of ${voters.length} voters hold it durably`)
    }
  }

  /** §4.1 and the 2015 raft-dev fix: one change at a time, and none before the leader committed in its term. */
  private checkMembership (key: string, core: RaftCore): void {
    const log = core.log
    const last = log.lastIndex()
    const from = Math.max(this.configChecked.get(key) ?? log.committed, log.committed, log.snapshotIndex) + 1
    this.configChecked.set(key, last)
    for (let i = from; i <= last; i++) {
      const e = log.entry(i)
      if (e?.type !== EntryType.Config || e.term !== core.term) continue
      if (log.term(log.committed) !== core.term) {
        this.fail(`membership: ${core.id} appended a config change at ${i} in term ${core.term} before committing an entry of that term`)
      }
      for (let j = i - 1; j > log.committed; j--) {
        if (log.entry(j)?.type === EntryType.Config) {
          this.fail(`membership: ${core.id} has config changes at ${j} and ${i} both uncommitted`)
          break
        }
      }
    }
  }
}
