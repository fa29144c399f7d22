/**
 * What a node's log store has promised is durable: every save and snapshot
 * whose promise resolved, in order. It is no model of the store (the real
 * FileLogStore on the simulated disk decides what survives); it is the
 * yardstick the invariants hold the store and the driver to: a node may only
 * vouch for state in this view, and a restart must recover at least this.
 */
import type { LogStore, RecoveredState } from '../raft/storage/log-store.js'
import type { Entry, HardState, NodeId, Snapshot } from '../raft/types.js'

export class DurableView {
  term = 0
  vote: NodeId | null = null
  snapshotIndex = 0
  snapshotTerm = 0
  lastIndex = 0
  private terms = new Map<number, number>()

  /** The term of the entry durable at `index`, or undefined (compacted or absent). */
  termAt (index: number): number | undefined {
    if (index === this.snapshotIndex) return this.snapshotTerm
    return this.terms.get(index)
  }

  /** True when the entry (index, term) is durable, or covered by the durable snapshot. */
  holds (index: number, term: number): boolean {
    return index <= this.snapshotIndex || this.terms.get(index) === term
  }

  /** Durable entries after the snapshot, as (index, term). */
  entries (): IterableIterator<[number, number]> {
    return this.terms.entries()
  }

  reset (state: RecoveredState): void {
    this.terms = new Map()
    this.snapshotIndex = state.snapshot?.meta.index ?? 0
    this.snapshotTerm = state.snapshot?.meta.term ?? 0
    this.lastIndex = this.snapshotIndex
    // No hard state and no snapshot: the node's first save never completed,
    // so it vouched for nothing, and the core starts its log over (see
    // RaftCore's constructor). A prefix of entries a crash left is not a promise.
    this.saved(state.hardState.term === 0 && state.snapshot === null ? [] : state.entries, state.hardState)
  }

  saved (entries: readonly Entry[], hardState: HardState | null): void {
    if (entries.length > 0) {
      for (let i = entries[0].index; i <= this.lastIndex; i++) this.terms.delete(i)
      for (const e of entries) this.terms.set(e.index, e.term)
      this.lastIndex = entries[entries.length - 1].index
    }
    if (hardState !== null) {
      this.term = hardState.term
      this.vote = hardState.vote
    }
  }

  snapshotSaved (snapshot: Snapshot): void {
    const { index, term } = snapshot.meta
    if (this.terms.get(index) !== term) {
      this.terms = new Map()
      this.lastIndex = index
    }
    for (const i of [...this.terms.keys()]) if (i <= index) this.terms.delete(i)
    this.lastIndex = Math.max(this.lastIndex, index)
    this.snapshotIndex = index
    this.snapshotTerm = term
  }
}

/** Told what passes through a {@link WatchedStore}. */
export interface StoreWatcher {
  /** The store recovered `state`; `promised` is still the view from before the restart. */
  recovered(state: RecoveredState, promised: DurableView): void
  /** Entries are about to be saved. */
  saving(entries: readonly Entry[]): void
}

/** A LogStore that forwards to the real one and keeps a node's {@link DurableView} up to date. */
export class WatchedStore implements LogStore {
  constructor (private readonly inner: LogStore, private readonly view: DurableView, private readonly watcher: StoreWatcher) {}

  async open (): Promise<RecoveredState> {
    const state = await this.inner.open()
    this.watcher.recovered(state, this.view)
    this.view.reset(state)
    return state
  }

  async save (entries: readonly Entry[], hardState: HardState | null): Promise<void> {
    this.watcher.saving(entries)
    await this.inner.save(entries, hardState)
    this.view.saved(entries, hardState)
  }

  async saveSnapshot (snapshot: Snapshot): Promise<void> {
    await this.inner.saveSnapshot(snapshot)
    this.view.snapshotSaved(snapshot)
  }

  async close (): Promise<void> {
    await this.inner.close()
  }
}
