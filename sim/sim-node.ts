/**
 * One simulated server: the real RaftNode over the real FileLogStore, on a
 * simulated disk, network and clock. The disk outlives incarnations; a crash
 * ends the current incarnation at once (its timers, transport and disk
 * calls go dead) and a restart recovers through the real recovery path.
 */
import { inspectCore, RaftNode, type RaftNodeOptions } from '../raft/driver/node.js'
import type { RaftCore } from '../raft/core/core.js'
import type { NodeId } from '../raft/types.js'
import { FileLogStore } from '../raft/storage/wal.js'
import { DurableView, WatchedStore } from './durable-view.js'
import type { InvariantChecker } from './invariants.js'
import type { KvResult } from './kv-machine.js'
import type { Prng } from './prng.js'
import { SimClock, type Scheduler } from './sim-clock.js'
import { SimDisk, type DiskHooks } from './sim-disk.js'
import type { SimNetwork } from './sim-network.js'
import { SimStateMachine } from './sim-state-machine.js'

/** The driver options a seed chooses for every node. */
export type NodeConfig = Required<Pick<RaftNodeOptions<unknown>,
  'tickMs' | 'electionTick' | 'heartbeatTick' | 'preVote' | 'checkQuorum' | 'leaseRead' | 'quiesceAfterTicks' |
  'maxInflight' | 'maxEntriesPerMsg' | 'maxBytesPerMsg' | 'snapshotChunkBytes' | 'snapshotLogRatio'>> & { readonly segmentBytes: number }

/** What a node needs from the simulator. */
export interface NodeEnv {
  readonly scheduler: Scheduler
  readonly network: SimNetwork
  readonly checker: InvariantChecker
  readonly hooks: DiskHooks
  /** A snapshot from the leader was restored into the state machine. */
  onSnapshotInstalled(): void
}

const DATA_DIR = '/data/raft'

export class SimNode {
  readonly disk = new SimDisk()
  /** What the store has promised is durable (see DurableView). */
  readonly view = new DurableView()
  /** True from a start until the next crash (the node may still be recovering). */
  up = false
  incarnation = 0
  /** The running driver; null while down or recovering. */
  raft: RaftNode<KvResult | null> | null = null
  sm: SimStateMachine | null = null

  constructor (
    readonly id: NodeId,
    private readonly bootstrap: readonly NodeId[] | undefined,
    private readonly config: NodeConfig,
    /** Snapshot after this many applied entries. */
    private readonly snapshotEvery: number,
    /** This node's clock runs at this rate (1 = true time). */
    private readonly clockRate: number,
    private readonly rng: Prng,
    private readonly env: NodeEnv
  ) {}

  /** Names this incarnation in invariant messages. */
  get key (): string {
    return `${this.id}#${this.incarnation}`
  }

  get core (): RaftCore | null {
    return this.raft === null ? null : inspectCore(this.raft)
  }

  /** Starts a new incarnation from what the disk holds; resolves once it runs (or crashed meanwhile). */
  async start (): Promise<void> {
    const incarnation = ++this.incarnation
    this.up = true
    const alive = (): boolean => this.up && this.incarnation === incarnation
    const { checker, scheduler, network } = this.env
    const key = this.key
    const store = new WatchedStore(
      new FileLogStore({ dir: DATA_DIR, fs: this.disk.view(this.env.hooks, alive), segmentBytes: this.config.segmentBytes }),
      this.view,
      {
        recovered: (state, promised) => { checker.onRecovered(this.id, state, promised) },
        saving: entries => {
          const core = this.core
          if (core !== null && alive()) checker.onEntries(this.id, core, entries)
        }
      })
    let booted = false
    const sm = new SimStateMachine({
      fail: msg => { if (alive()) checker.fail(`${key}: ${msg}`) },
      applied: (e, state) => { if (alive()) checker.onApply(this.id, e, state) },
      restored: () => { if (booted && alive()) this.env.onSnapshotInstalled() }
    })
    this.sm = sm
    try {
      const raft = await RaftNode.start({
        ...this.config,
        id: this.id,
        store,
        transport: network.join(this.id, alive),
        stateMachine: sm,
        bootstrap: this.bootstrap,
        snapshotEvery: this.snapshotEvery,
        clock: new SimClock(scheduler, alive, this.clockRate),
        random: () => this.rng.next()
      })
      booted = true
      if (!alive()) return
      raft.on('error', err => { if (alive()) checker.fail(`${key} stopped on an error: ${err.stack ?? err.message}`) })
      this.raft = raft
    } catch (err) {
      if (alive()) checker.fail(`${key} could not recover from its disk: ${(err as Error).stack ?? String(err)}`)
    }
  }

  /** Power loss: the incarnation ends where it stands and unsynced writes are lost. */
  crash (): void {
    this.up = false
    this.raft = null
    this.sm = null
    this.disk.crash(this.rng)
  }
}
