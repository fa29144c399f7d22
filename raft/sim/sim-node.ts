/**
 * One simulated server: a Raft core, what its disk holds, and its key-value
 * state machine. Persisting a Ready takes simulated time; a crash in that
 * window keeps only a prefix of the writes, as a torn fsync would.
 */
import { RaftCore, type Ready } from '../core.js'
import type { Message } from '../messages.js'
import type { Entry, HardState, NodeId, Snapshot } from '../types.js'
import { KvMachine } from './kv-machine.js'
import type { Prng } from './prng.js'

export interface Durable {
  hardState: HardState
  snapshot: Snapshot | null
  entries: Entry[]
}

export interface SimNodeConfig {
  readonly electionTick: number
  readonly snapshotChunkBytes: number
  readonly maxEntriesPerMsg: number
  readonly maxInflight: number
  readonly leaseRead: boolean
}

export class SimNode {
  readonly id: NodeId
  up = true
  core: RaftCore
  kv = new KvMachine()
  incarnation = 0
  /** The Ready being persisted, if any. */
  inFlight: Ready | null = null
  /** Messages of the in-flight Ready that must wait for its fsync. */
  deferredMessages: readonly Message[] = []
  readonly durable: Durable = { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [] }
  /** Compact once this many entries were applied since the last snapshot. */
  readonly compactEvery: number

  constructor (id: NodeId, private readonly bootstrap: readonly NodeId[] | undefined, private readonly cfg: SimNodeConfig, private readonly rng: Prng) {
    this.id = id
    this.compactEvery = rng.int(5, 40)
    this.core = this.newCore(bootstrap)
  }

  private newCore (bootstrap: readonly NodeId[] | undefined): RaftCore {
    return new RaftCore({
      id: this.id,
      random: () => this.rng.next(),
      electionTick: this.cfg.electionTick,
      snapshotChunkBytes: this.cfg.snapshotChunkBytes,
      maxEntriesPerMsg: this.cfg.maxEntriesPerMsg,
      maxInflight: this.cfg.maxInflight,
      leaseRead: this.cfg.leaseRead,
      state: { hardState: this.durable.hardState, snapshot: this.durable.snapshot, entries: [...this.durable.entries] },
      bootstrap
    })
  }

  get incarnationKey (): string {
    return `${this.id}#${this.incarnation}`
  }

  /** Crash: memory is gone; an in-flight persist keeps a random prefix of its writes. */
  crash (): void {
    const rd = this.inFlight
    if (rd !== null) {
      const steps = (rd.snapshot !== null ? 1 : 0) + rd.entries.length + (rd.hardState !== null ? 1 : 0)
      this.persist(rd, this.rng.int(0, steps))
    }
    this.inFlight = null
    this.up = false
    this.incarnation++
  }

  /** Restart from what the disk holds. */
  restart (): void {
    this.up = true
    this.kv = new KvMachine()
    if (this.durable.snapshot !== null) this.kv.restore(this.durable.snapshot.data)
    this.core = this.newCore(this.bootstrap)
  }

  /**
   * Writes the first `limit` steps of a Ready (snapshot file, then entries,
   * then hard state), the order the file store uses.
   */
  persist (rd: Ready, limit = Infinity): void {
    let budget = limit
    const d = this.durable
    if (rd.snapshot !== null) {
      if (budget-- <= 0) return
      const s = rd.snapshot
      const at = d.entries.find(e => e.index === s.meta.index)
      d.entries = at?.term === s.meta.term ? d.entries.filter(e => e.index > s.meta.index) : []
      d.snapshot = s
    }
    for (const e of rd.entries) {
      if (budget-- <= 0) return
      d.entries = d.entries.filter(x => x.index < e.index)
      d.entries.push(e)
    }
    if (rd.hardState !== null) {
      if (budget-- <= 0) return
      // Like the driver, a commit-only change may go unpersisted.
      const commitOnly = rd.entries.length === 0 && rd.hardState.term === d.hardState.term && rd.hardState.vote === d.hardState.vote
      if (!commitOnly || this.rng.chance(0.5)) d.hardState = rd.hardState
    }
  }

  /** Takes a snapshot of the state machine if enough was applied since the last one. */
  maybeCompact (): void {
    const applied = this.core.log.applied
    if (applied - this.core.log.snapshotIndex < this.compactEvery) return
    const snap = this.core.compact(applied, this.kv.snapshot())
    const d = this.durable
    d.entries = d.entries.filter(e => e.index > snap.meta.index)
    d.snapshot = snap
  }
}
