/**
 * Deterministic simulation of a raftmesh Raft cluster running the code that
 * ships: the real RaftNode driver over the real FileLogStore, with only the
 * disk (SimDisk), the network (SimNetwork) and time (SimClock) simulated, and
 * every choice drawn from one seeded PRNG, so a seed replays exactly.
 *
 * Faults: message drop, delay, reordering, duplication, symmetric and
 * one-way partitions; crashes at random and at persist points (between a
 * write and its fsync, between an fsync and the sends it allows, during
 * snapshot saves and installs, segment rotation and compaction) that lose
 * unsynced writes and may tear the last; restarts through the real recovery
 * path; membership changes, including overlapping attempts and attempts
 * right after a leader change (both must be refused); leadership transfers.
 * Each seed also varies pre-vote, check-quorum, lease reads, quiescence,
 * ticks, message limits, segment size and cluster size (1 to 7 voters).
 * With quiescence on, clients pause now and then so that the group goes
 * quiet and faults strike it quiesced.
 *
 * Peers learn of failures as the mesh's keep-alive tells them
 * (reportUnreachable): at once for a crashed process, after SILENCE_MS for
 * a link that stayed cut (both ends, as the silent end aborts the
 * connection), and sometimes falsely early when a partition starts.
 *
 * Invariants are checked after every event (invariants.ts), the client
 * history is kept for a linearizability check, and after the faults stop the
 * cluster must elect a leader and commit within a bound.
 */
import { ConfigChangeError } from '../raft/errors.js'
import type { Message } from '../raft/core/messages.js'
import type { ConfChange, NodeId } from '../raft/types.js'
import { EventQueue } from './event-queue.js'
import { InvariantChecker } from './invariants.js'
import type { Operation } from './linearizability.js'
import { Prng } from './prng.js'
import { CLIENT_TIMEOUT_MS, SimClients } from './sim-clients.js'
import { SimCoordination } from './sim-coordination.js'
import type { Scheduler } from './sim-clock.js'
import type { PersistPoint } from './sim-disk.js'
import { SimNetwork } from './sim-network.js'
import { SimNode, type NodeConfig } from './sim-node.js'

export interface SimOptions {
  readonly seed: number
  /** Length of the fault phase, in simulated milliseconds. Default 3000. */
  readonly faultMs?: number
  /** Simulated events allowed per seed; more is a failure. Default 400000. */
  readonly maxEvents?: number
  /** Wall-clock milliseconds allowed per seed; more is a failure. Default 60000. */
  readonly maxWallMs?: number
  /** Observer for the demo: called on notable events with simulated milliseconds. */
  readonly onEvent?: (e: SimEvent) => void
}

export type SimEvent =
  | { kind: 'leader', at: number, node: NodeId, term: number }
  | { kind: 'partition', at: number, groups: NodeId[][], oneWay: boolean }
  | { kind: 'heal', at: number }
  | { kind: 'crash', at: number, node: NodeId, point: PersistPoint | null }
  | { kind: 'restart', at: number, node: NodeId }
  | { kind: 'membership', at: number, change: string }
  | { kind: 'transfer', at: number, from: NodeId, to: NodeId }

export interface SimStats {
  events: number
  simulatedMs: number
  voters: number
  leaderChanges: number
  crashes: number
  crashesAtPersistPoints: number
  tornWrites: number
  partitions: number
  messages: number
  dropped: number
  duplicated: number
  snapshotsInstalled: number
  configChanges: number
  configChangesRefused: number
  transfers: number
  opsOk: number
  opsUnknown: number
  /** Simulated ms from the end of faults until a new entry committed. */
  recoveryMs: number
  /** Heartbeats marked quiesce that a leader sent (0 unless the seed turned quiescence on). */
  quiesceHeartbeats: number
  eventCapHit: boolean
}

export interface SimResult {
  readonly seed: number
  readonly violations: string[]
  readonly history: Operation[]
  readonly stats: SimStats
}

const TICK_MS = 10
/** How long the mesh's keep-alive waits on a silent connection before it reports the peer failed. */
const SILENCE_MS = 1000

/** The liveness probe after faults stop, and its marker write still waiting to commit. */
interface Probe {
  done: boolean
  at: number
  marker: { readonly node: SimNode, readonly incarnation: number, readonly term: number, settled: boolean } | null
}
/** Probability that any one persist point crashes its node, by kind of point (rare points get more). */
const POINT_WEIGHT: Record<PersistPoint, number> = {
  'wal-write': 1,
  'wal-fsync': 2,
  'wal-fsynced': 2,
  'segment-create': 20,
  'segment-dirsync': 20,
  'snapshot-write': 10,
  'snapshot-fsync': 10,
  'snapshot-rename': 10,
  'snapshot-dirsync': 10,
  'compaction-unlink': 10,
  'torn-tail-truncate': 10
}

export class Simulator implements Scheduler {
  readonly rng: Prng
  readonly nodes: SimNode[]
  private readonly queue = new EventQueue<() => void>()
  readonly checker: InvariantChecker
  readonly network: SimNetwork
  readonly clients: SimClients
  readonly coordination: SimCoordination
  now = 0
  private readonly config: NodeConfig
  private faultsOn = true
  private readonly persistCrashRate: number
  /**
   * Choices added after the seeds' main stream was fixed (quiescence, lulls,
   * the keep-alive's timing), drawn apart so that they leave every other
   * choice of a seed as it was.
   */
  private readonly side: Prng
  /** Per directed link `a>b` cut by the current partition: since when, without a break. */
  private blockedSince = new Map<string, number>()
  private lastLeader: string | null = null
  /** Per leader incarnation and term: since when it cannot hear a majority. */
  private cutOffSince = new Map<string, number>()
  readonly stats: SimStats

  constructor (readonly opts: SimOptions) {
    this.rng = new Prng(opts.seed)
    const rng = this.rng
    const voters = rng.pick([1, 2, 3, 3, 3, 4, 5, 5, 6, 7])
    const spares = rng.int(0, 2)
    const ids = Array.from({ length: voters + spares }, (_, i) => `n${i + 1}`)
    const checkQuorum = rng.chance(0.6)
    const electionTick = rng.pick([5, 10, 20])
    const config = {
      tickMs: TICK_MS,
      electionTick,
      heartbeatTick: rng.int(1, Math.min(3, electionTick - 1)),
      preVote: rng.chance(0.5),
      checkQuorum,
      leaseRead: checkQuorum && rng.chance(0.3),
      maxInflight: rng.pick([1, 4, 64]),
      maxEntriesPerMsg: rng.pick([1, 4, 64]),
      maxBytesPerMsg: rng.pick([64, 1024, 1024 * 1024]),
      snapshotChunkBytes: rng.pick([16, 64, 1024]),
      segmentBytes: rng.pick([512, 4096, 65536])
    }
    this.side = new Prng(opts.seed ^ 0x51e5eed)
    this.config = {
      ...config,
      quiesceAfterTicks: !config.leaseRead && this.side.chance(0.5) ? this.side.pick([1, 3, 10]) : 0,
      // Drawn from a stream of its own, so that the side stream's later choices stay as they were.
      snapshotLogRatio: new Prng(opts.seed ^ 0x5a95).pick([0, 0.25, 1])
    }
    this.persistCrashRate = rng.pick([0.0005, 0.002, 0.005])
    const fsyncMs = rng.pick([0, 1, 3])
    this.stats = {
      events: 0, simulatedMs: 0, voters, leaderChanges: 0, crashes: 0, crashesAtPersistPoints: 0, tornWrites: 0, partitions: 0,
      messages: 0, dropped: 0, duplicated: 0, snapshotsInstalled: 0, configChanges: 0, configChangesRefused: 0, transfers: 0,
      opsOk: 0, opsUnknown: 0, recoveryMs: 0, quiesceHeartbeats: 0, eventCapHit: false
    }
    this.checker = new InvariantChecker(id => this.node(id).view)
    this.network = new SimNetwork(this, rng.fork(), rng.pick([3, 8, 15]), m => { this.onSend(m) })
    const bootstrap = ids.slice(0, voters)
    this.nodes = ids.map(id => new SimNode(id, bootstrap.includes(id) ? bootstrap : undefined, this.config,
      rng.int(5, 40), 1 + rng.int(-5, 5) / 1000, rng.fork(), {
        scheduler: this,
        network: this.network,
        checker: this.checker,
        hooks: {
          crashAt: point => this.crashAtPoint(id, point),
          afterFsync: fn => { this.at(this.now + rng.int(0, fsyncMs), fn) }
        },
        onSnapshotInstalled: () => { this.stats.snapshotsInstalled++ }
      }))
    this.clients = new SimClients(this, rng.fork(), this.nodes, 3)
    this.coordination = new SimCoordination(this, rng.fork(), this.nodes)
  }

  at (time: number, fn: () => void): void {
    this.queue.push(time, fn)
  }

  private node (id: NodeId): SimNode {
    return this.nodes.find(n => n.id === id) as SimNode
  }

  private emit (e: SimEvent): void {
    this.opts.onEvent?.(e)
  }

  /** The running leader of the highest term, if any. */
  leader (): SimNode | undefined {
    let best: SimNode | undefined
    for (const n of this.nodes) {
      const core = n.core
      if (core?.role === 'leader' && (best?.core === undefined || best.core === null || core.term > best.core.term)) best = n
    }
    return best
  }

  /** Runs the fault phase, heals, checks liveness, and returns the verdict. */
  async run (): Promise<SimResult> {
    const started = performance.now()
    const maxEvents = this.opts.maxEvents ?? 400_000
    const maxWallMs = this.opts.maxWallMs ?? 60_000
    const over = (): string | null => {
      if (this.stats.events > maxEvents) return `event cap: more than ${maxEvents} simulated events`
      if (performance.now() - started > maxWallMs) return `wall-time cap: more than ${maxWallMs} ms`
      return null
    }
    const violations = this.checker.violations
    for (const n of this.nodes) void n.start()
    await this.settle()
    this.at(50, () => { this.fault() })
    if (this.config.quiesceAfterTicks > 0) this.at(this.side.int(50, 400), () => { this.lull() })
    this.clients.start()
    this.coordination.start()
    const faultMs = this.opts.faultMs ?? 3000
    await this.runUntil(faultMs, over)
    this.healAll()
    const healedAt = this.now
    const bound = healedAt + 3000 + 4 * this.config.electionTick * TICK_MS
    const probe: Probe = { done: false, at: 0, marker: null }
    this.probe(probe)
    while (!probe.done && this.now < bound && violations.length === 0 && !this.stats.eventCapHit) await this.runUntil(this.now + TICK_MS, over)
    if (!probe.done && violations.length === 0 && !this.stats.eventCapHit) {
      const nodes = this.nodes.map(n => { const c = n.core; return c === null ? `${n.id}:down` : `${n.id}:${c.role}/t${c.term}/commit${c.log.committed}/applied${c.log.applied}/last${c.log.lastIndex()}` }).join(' ')
      violations.push(`liveness: no leader committed a new entry within ${bound - healedAt} ms after faults stopped (${nodes})`)
    }
    this.stats.recoveryMs = probe.at - healedAt
    // Every operation still waiting must be decided within its timeout.
    this.clients.stop()
    this.coordination.stop()
    if (violations.length === 0) await this.runUntil(this.now + CLIENT_TIMEOUT_MS + 100, over)
    if (violations.length === 0 && this.clients.pending > 0) violations.push(`liveness: ${this.clients.pending} client operations undecided after their timeout`)
    this.clients.finish()
    this.stats.simulatedMs = Math.round(this.now)
    this.stats.tornWrites = this.nodes.reduce((n, node) => n + node.disk.tornWrites, 0)
    Object.assign(this.stats, this.network.stats, this.clients.stats)
    return { seed: this.opts.seed, violations, history: this.clients.history, stats: this.stats }
  }

  /** Lets every promise the last event resolved run to its next wait on simulated time. */
  private async settle (): Promise<void> {
    await new Promise(resolve => setImmediate(resolve))
  }

  private async runUntil (t: number, over: () => string | null): Promise<void> {
    const violations = this.checker.violations
    for (;;) {
      const head = this.queue.peek()
      if (head === undefined || head.at > t) break
      this.queue.pop()
      this.now = head.at
      this.stats.events++
      if ((this.stats.events & 1023) === 0) {
        const why = over()
        if (why !== null) {
          this.stats.eventCapHit = true
          violations.push(why)
          return
        }
      }
      try {
        head.value()
      } catch (err) {
        this.checker.fail(`exception at ${this.now} ms: ${(err as Error).stack ?? String(err)}`)
      }
      await this.settle()
      this.afterStep()
      if (violations.length > 0) return
    }
    this.now = Math.max(this.now, t)
  }

  private afterStep (): void {
    const live = []
    for (const n of this.nodes) {
      const core = n.core
      if (core !== null) live.push({ incarnation: n.key, core })
    }
    this.checker.afterStep(live)
    const l = this.leader()
    const key = l === undefined ? null : `${l.key}@${l.core?.term ?? 0}`
    if (l !== undefined && key !== this.lastLeader) {
      this.lastLeader = key
      this.stats.leaderChanges++
      this.emit({ kind: 'leader', at: this.now, node: l.id, term: l.core?.term ?? 0 })
      // A change right after a leader change must wait for the new leader's first commit.
      if (this.faultsOn && this.rng.chance(0.3)) this.changeMembership()
    }
    this.checkQuorumStepDown()
  }

  /**
   * §6.2: with check-quorum, a leader cut off from a majority steps down
   * within about two election timeouts; a quiesced one hears nothing to miss
   * until the keep-alive reports its peers lost, so it gets SILENCE_MS more.
   */
  private checkQuorumStepDown (): void {
    if (!this.config.checkQuorum) return
    const limit = (3 * this.config.electionTick + 2) * TICK_MS * 1.01 + 50 + (this.config.quiesceAfterTicks > 0 ? SILENCE_MS + 600 : 0)
    const still = new Map<string, number>()
    for (const n of this.nodes) {
      const core = n.core
      if (core?.role !== 'leader') continue
      const voters = core.config.voters
      const heard = voters.filter(v => v === n.id || (this.node(v).raft !== null && this.network.reaches(v, n.id) && this.network.reaches(n.id, v))).length
      if (heard * 2 > voters.length) continue
      const key = `${n.key}@${core.term}`
      const since = this.cutOffSince.get(key) ?? this.now
      still.set(key, since)
      if (this.now - since > limit) this.checker.fail(`check-quorum: ${n.id} still leads term ${core.term} ${Math.round(this.now - since)} ms after losing its majority`)
    }
    this.cutOffSince = still
  }

  private onSend (m: Message): void {
    if (m.type === 'Heartbeat' && m.quiesce) this.stats.quiesceHeartbeats++
    const from = this.node(m.from)
    const core = from.core
    const to = this.node(m.to).core
    if (core !== null) this.checker.onSend(m, core, from.view, to?.role === 'leader' && to.term === m.term ? to : null)
  }

  private crashAtPoint (id: NodeId, point: PersistPoint): boolean {
    if (!this.faultsOn || !this.rng.chance(this.persistCrashRate * POINT_WEIGHT[point])) return false
    this.stats.crashesAtPersistPoints++
    this.crash(this.node(id), point)
    return true
  }

  crash (node: SimNode, point: PersistPoint | null): void {
    node.crash()
    this.stats.crashes++
    this.clients.onCrash(node)
    this.emit({ kind: 'crash', at: this.now, node: node.id, point })
    // Peers notice the closed connection a little later, as a transport would.
    for (const other of this.nodes) {
      if (other !== node) this.at(this.now + this.rng.int(1, 20), () => { other.raft?.reportUnreachable(node.id) })
    }
    this.at(this.now + this.rng.int(20, 600), () => { if (!node.up) this.restart(node) })
  }

  private restart (node: SimNode): void {
    this.emit({ kind: 'restart', at: this.now, node: node.id })
    void node.start()
  }

  private fault (): void {
    if (!this.faultsOn) return
    this.at(this.now + this.rng.int(20, 400), () => { this.fault() })
    const r = this.rng.next()
    if (r < 0.15) this.partition()
    else if (r < 0.3) this.heal()
    else if (r < 0.42) {
      const victim = this.rng.pick(this.nodes.filter(n => n.up))
      if (victim !== undefined) this.crash(victim, null)
    } else if (r < 0.52) {
      this.network.dropRate = this.rng.pick([0, 0, 0.05, 0.2])
      this.network.dupRate = this.rng.pick([0, 0.05, 0.2])
    } else if (r < 0.75) {
      this.changeMembership()
    } else if (r < 0.85) {
      this.transferLeadership()
    }
  }

  private partition (): void {
    const ids = this.nodes.map(n => n.id)
    const l = this.leader()
    // The classic case: the leader alone on one side, still believing it leads.
    const groups = l !== undefined && this.rng.chance(0.4) ? [[l.id], ids.filter(id => id !== l.id)] : this.split(ids)
    const oneWay = this.rng.chance(0.3)
    const blocked = new Set<string>()
    for (const a of groups[0]) {
      for (const b of groups[1]) {
        blocked.add(`${a}>${b}`)
        if (!oneWay) blocked.add(`${b}>${a}`)
        // A partition may look like a failure to some (a false alarm must stay safe).
        if (this.rng.chance(0.3)) this.at(this.now + this.rng.int(1, 50), () => { this.node(b).raft?.reportUnreachable(a) })
      }
    }
    this.setBlocked(blocked)
    this.stats.partitions++
    this.emit({ kind: 'partition', at: this.now, groups, oneWay })
  }

  private split (ids: readonly NodeId[]): NodeId[][] {
    const a: NodeId[] = []
    const b: NodeId[] = []
    for (const id of ids) (this.rng.chance(0.5) ? a : b).push(id)
    if (a.length === 0) a.push(b.pop() as NodeId)
    if (b.length === 0) b.push(a.pop() as NodeId)
    return [a, b]
  }

  private heal (): void {
    if (this.network.blocked.size > 0) this.emit({ kind: 'heal', at: this.now })
    this.setBlocked(new Set())
  }

  /**
   * Cuts the links in `blocked` (and only those). A link that stays cut for
   * SILENCE_MS makes the mesh's keep-alive report each end to the other:
   * the end that hears nothing first, the other once the aborted
   * connection reaches it.
   */
  private setBlocked (blocked: Set<string>): void {
    const since = new Map<string, number>()
    for (const link of blocked) {
      const from = this.blockedSince.get(link) ?? this.now
      since.set(link, from)
      if (this.blockedSince.has(link)) continue
      const [a, b] = link.split('>')
      const silentAt = from + SILENCE_MS + this.side.int(0, 100)
      this.at(silentAt, () => {
        if (this.blockedSince.get(link) !== from) return
        this.node(b).raft?.reportUnreachable(a)
        this.at(this.now + this.side.int(1, 500), () => { this.node(a).raft?.reportUnreachable(b) })
      })
    }
    this.blockedSince = since
    this.network.blocked = blocked
  }

  /** With quiescence: clients and coordination pause for a while, and the group may go quiet. */
  private lull (): void {
    if (!this.faultsOn) return
    const until = this.now + this.side.int(100, 800)
    this.clients.pausedUntil = until
    this.coordination.pausedUntil = until
    this.at(until + this.side.int(50, 600), () => { this.lull() })
  }

  /** Proposes a random valid change on the leader; sometimes a second one at once, which must be refused. */
  private changeMembership (): void {
    const l = this.leader()
    const core = l?.core
    if (l === undefined || core === null || core === undefined) return
    const before = core.config
    const { voters, learners } = before
    const outsiders = this.nodes.map(n => n.id).filter(id => !voters.includes(id) && !learners.includes(id))
    const options: ConfChange[] = []
    for (const node of outsiders) options.push({ type: 'addLearner', node }, { type: 'addVoter', node })
    for (const node of learners) options.push({ type: 'promoteLearner', node }, { type: 'removeNode', node })
    if (voters.length > 1) for (const node of voters) options.push({ type: 'removeNode', node })
    if (options.length === 0) return
    const attempts = this.rng.chance(0.4) ? 2 : 1
    for (let i = 0; i < attempts; i++) {
      const cc = this.rng.pick(options)
      l.raft?.changeMembership(cc, { timeoutMs: CLIENT_TIMEOUT_MS }).catch(err => {
        if (err instanceof ConfigChangeError) this.stats.configChangesRefused++
      })
    }
    // changeMembership throws synchronously into its promise; what the log took shows in the config.
    if (core.config !== before) {
      this.stats.configChanges++
      this.emit({ kind: 'membership', at: this.now, change: JSON.stringify(core.config) })
    }
  }

  private transferLeadership (): void {
    const l = this.leader()
    const core = l?.core
    if (l === undefined || core === null || core === undefined) return
    const others = core.config.voters.filter(id => id !== l.id)
    if (others.length === 0) return
    const to = this.rng.pick(others)
    try {
      l.raft?.transferLeadership(to)
      this.stats.transfers++
      this.emit({ kind: 'transfer', at: this.now, from: l.id, to })
    } catch {
      // A transfer already running refuses the next: fine.
    }
  }

  /** Faults stop: the network heals and every crashed node restarts. */
  private healAll (): void {
    this.faultsOn = false
    this.setBlocked(new Set())
    this.network.dropRate = 0
    this.network.dupRate = 0
    this.emit({ kind: 'heal', at: this.now })
    for (const n of this.nodes) if (!n.up) this.restart(n)
  }

  /**
   * After faults stop: propose a marker write until one commits. A new
   * marker goes out only once the last can no longer commit (refused, timed
   * out, or its leader lost office), so the probe adds no backlog of its own
   * to the log it is waiting on.
   */
  private probe (probe: Probe): void {
    if (probe.done) return
    const last = probe.marker
    const pending = last !== null && !last.settled && last.node.incarnation === last.incarnation &&
      last.node.core?.role === 'leader' && last.node.core.term === last.term
    const l = this.leader()
    if (!pending && l?.raft !== undefined && l.raft !== null && l.core !== null) {
      const marker = { node: l, incarnation: l.incarnation, term: l.core.term, settled: false }
      probe.marker = marker
      l.raft.propose(new TextEncoder().encode('probe'), { timeoutMs: CLIENT_TIMEOUT_MS }).then(() => {
        if (probe.done) return
        probe.done = true
        probe.at = this.now
      }, () => { marker.settled = true })
    }
    this.at(this.now + 50, () => { this.probe(probe) })
  }
}

/** Runs one seed. */
export async function simulate (opts: SimOptions): Promise<SimResult> {
  return await new Simulator(opts).run()
}
