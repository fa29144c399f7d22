/**
 * Deterministic simulation of a Raft cluster: many cores in one process on a
 * simulated network and clock, every choice drawn from one seeded PRNG.
 * Faults: message drop, delay, reordering, duplication, symmetric and one-way
 * partitions, crashes that lose unsynced writes, restarts, membership
 * changes, leadership transfers and snapshots. Invariants are checked after
 * every step; client operations are recorded as a history for a
 * linearizability checker.
 */
import { splitLeaderMessages, type Message } from '../messages.js'
import type { Entry, NodeId } from '../types.js'
import { InvariantChecker } from './invariants.js'
import { EventQueue } from './event-queue.js'
import { Prng } from './prng.js'
import { SimNode } from './sim-node.js'
import { SimClients, type HistoryOp } from './sim-clients.js'

export interface SimOptions {
  readonly seed: number
  /** Initial voters. Default 3 or 5, chosen by the seed. */
  readonly nodes?: number
  /** Extra node ids used by membership changes. Default 2. */
  readonly spares?: number
  /** Length of the fault phase, in ticks. Default 300. */
  readonly faultTicks?: number
  /** Ticks allowed after faults stop for a leader to commit a new entry. Default 300. */
  readonly livenessBound?: number
  readonly clients?: number
  /** Observer for the demo: called on notable events with simulated milliseconds. */
  readonly onEvent?: (e: SimEvent) => void
}

export type SimEvent =
  | { kind: 'leader', at: number, node: NodeId, term: number }
  | { kind: 'partition', at: number, groups: NodeId[][], oneWay: boolean }
  | { kind: 'heal', at: number }
  | { kind: 'crash', at: number, node: NodeId }
  | { kind: 'restart', at: number, node: NodeId }
  | { kind: 'membership', at: number, change: string }
  | { kind: 'transfer', at: number, from: NodeId, to: NodeId }
  | { kind: 'progress', at: number, committed: number, ops: number }

export interface SimStats {
  ticks: number
  events: number
  leaderChanges: number
  crashes: number
  partitions: number
  messages: number
  dropped: number
  duplicated: number
  snapshotsInstalled: number
  membershipChanges: number
  transfers: number
  committed: number
  opsOk: number
  opsUnknown: number
  /** Ticks from the end of faults until a new entry committed. */
  recoveryTicks: number
}

export interface SimResult {
  readonly seed: number
  readonly violations: string[]
  readonly history: HistoryOp[]
  readonly stats: SimStats
}

type SimEventKind =
  | { t: 'tick', node: SimNode }
  | { t: 'deliver', msg: Message }
  | { t: 'persisted', node: SimNode, incarnation: number }
  | { t: 'fault' }
  | { t: 'client', client: number }
  | { t: 'unreachable', node: SimNode, peer: NodeId }

const TICK_MS = 10
const PROGRESS_MS = 500

export class Simulator {
  readonly rng: Prng
  readonly nodes: SimNode[]
  readonly byId = new Map<NodeId, SimNode>()
  readonly queue = new EventQueue<SimEventKind>()
  readonly checker = new InvariantChecker()
  readonly clients: SimClients
  now = 0
  private blocked = new Set<string>()
  private dropRate = 0
  private dupRate = 0
  private faultsOn = true
  private lastLeader: NodeId | null = null
  readonly stats: SimStats = {
    ticks: 0, events: 0, leaderChanges: 0, crashes: 0, partitions: 0, messages: 0, dropped: 0, duplicated: 0,
    snapshotsInstalled: 0, membershipChanges: 0, transfers: 0, committed: 0, opsOk: 0, opsUnknown: 0, recoveryTicks: 0
  }

  constructor (readonly opts: SimOptions) {
    this.rng = new Prng(opts.seed)
    const n = opts.nodes ?? (this.rng.chance(0.5) ? 3 : 5)
    const ids = Array.from({ length: n + (opts.spares ?? 2) }, (_, i) => `n${i + 1}`)
    const voters = ids.slice(0, n)
    const cfg = {
      electionTick: 10,
      snapshotChunkBytes: this.rng.pick([16, 64, 1024]),
      maxEntriesPerMsg: this.rng.pick([1, 4, 64]),
      maxInflight: this.rng.pick([1, 4, 64]),
      leaseRead: this.rng.chance(0.3)
    }
    this.nodes = ids.map(id => new SimNode(id, voters.includes(id) ? voters : undefined, cfg, this.rng.fork()))
    for (const node of this.nodes) {
      this.byId.set(node.id, node)
      this.queue.push(this.rng.int(1, TICK_MS), { t: 'tick', node })
    }
    this.clients = new SimClients(this, opts.clients ?? 3)
  }

  emit (e: SimEvent): void {
    this.opts.onEvent?.(e)
  }

  leader (): SimNode | undefined {
    let best: SimNode | undefined
    for (const n of this.nodes) {
      if (n.up && n.core.role === 'leader' && (best === undefined || n.core.term > best.core.term)) best = n
    }
    return best
  }

  /** Runs the fault phase, then heals and checks liveness; returns the verdict. */
  run (): SimResult {
    const faultTicks = this.opts.faultTicks ?? 300
    this.queue.push(50, { t: 'fault' })
    this.clients.start()
    for (let t = 0; t < faultTicks * TICK_MS && this.checker.violations.length === 0; t += PROGRESS_MS) {
      this.runUntil(Math.min(t + PROGRESS_MS, faultTicks * TICK_MS))
      this.emit({ kind: 'progress', at: this.now, committed: this.stats.committed, ops: this.stats.opsOk })
    }
    this.healAll()
    const healedAt = this.now
    const bound = (this.opts.livenessBound ?? 300) * TICK_MS
    const probe = this.clients.startProbe()
    while (!probe.done && this.now < healedAt + bound && this.checker.violations.length === 0) {
      this.runUntil(this.now + TICK_MS)
    }
    if (!probe.done && this.checker.violations.length === 0) {
      this.checker.violations.push(`liveness: no new entry committed within ${bound / TICK_MS} ticks after faults stopped`)
    }
    this.stats.recoveryTicks = Math.ceil((probe.doneAt - healedAt) / TICK_MS)
    // Let operations in flight finish, then close the history.
    this.runUntil(this.now + 50 * TICK_MS)
    this.clients.finish()
    this.stats.ticks = Math.round(this.now / TICK_MS)
    this.emit({ kind: 'progress', at: this.now, committed: this.stats.committed, ops: this.stats.opsOk })
    return { seed: this.opts.seed, violations: this.checker.violations, history: this.clients.history, stats: this.stats }
  }

  runUntil (t: number): void {
    for (;;) {
      const head = this.queue.peek()
      if (head === undefined || head.at > t) break
      this.queue.pop()
      this.now = head.at
      this.stats.events++
      try {
        this.handle(head.value)
      } catch (err) {
        this.checker.violations.push(`exception at ${this.now} ms: ${(err as Error).stack ?? String(err)}`)
      }
      this.afterStep()
      if (this.checker.violations.length > 0) return
    }
    this.now = Math.max(this.now, t)
  }

  private afterStep (): void {
    const live = this.nodes.filter(n => n.up)
    this.checker.afterStep(live.map(n => ({ incarnation: n.incarnationKey, core: n.core })))
    const l = this.leader()
    if (l !== undefined && l.id !== this.lastLeader) {
      this.lastLeader = l.id
      this.stats.leaderChanges++
      this.emit({ kind: 'leader', at: this.now, node: l.id, term: l.core.term })
    }
  }

  private handle (ev: SimEventKind): void {
    switch (ev.t) {
      case 'tick':
        if (ev.node.up) {
          ev.node.core.tick()
          this.pump(ev.node)
        }
        this.queue.push(this.now + TICK_MS + this.rng.int(-1, 1), ev)
        return
      case 'deliver': {
        const to = this.byId.get(ev.msg.to)
        if (to === undefined || !to.up || this.blocked.has(`${ev.msg.from}>${ev.msg.to}`)) {
          this.stats.dropped++
          return
        }
        to.core.step(ev.msg)
        this.pump(to)
        return
      }
      case 'persisted':
        if (ev.node.up && ev.node.incarnation === ev.incarnation) this.completePersist(ev.node)
        return
      case 'fault':
        if (this.faultsOn) {
          this.injectFault()
          this.queue.push(this.now + this.rng.int(20, 400), ev)
        }
        return
      case 'client':
        this.clients.act(ev.client)
        return
      case 'unreachable':
        if (ev.node.up) ev.node.core.reportUnreachable(ev.peer)
    }
  }

  /** Hands the node's next Ready to its (simulated) disk. */
  pump (node: SimNode): void {
    if (!node.up || node.inFlight !== null || !node.core.hasReady()) return
    const rd = node.core.ready()
    this.checker.onEntries(node.id, node.core, rd.entries)
    node.inFlight = rd
    if (rd.softState.role === 'leader') {
      const { early, late } = splitLeaderMessages(rd.messages)
      for (const m of early) this.send(m)
      node.deferredMessages = late
    } else {
      node.deferredMessages = rd.messages
    }
    // As the driver does: committed entries are durable on a majority, so they are applied before our own fsync.
    if (rd.snapshot === null) this.apply(node, rd.committedEntries)
    const fsync = rd.entries.length > 0 || rd.hardState !== null || rd.snapshot !== null ? this.rng.int(0, 3) : 0
    this.queue.push(this.now + fsync, { t: 'persisted', node, incarnation: node.incarnation })
  }

  private apply (node: SimNode, entries: readonly Entry[]): void {
    for (const e of entries) {
      this.checker.onApply(node.id, e)
      this.clients.onApply(node, e)
      this.stats.committed = Math.max(this.stats.committed, e.index)
    }
  }

  private completePersist (node: SimNode): void {
    const rd = node.inFlight
    if (rd === null) return
    node.persist(rd)
    for (const m of node.deferredMessages) this.send(m)
    if (rd.snapshot !== null) {
      node.kv.restore(rd.snapshot.data)
      this.stats.snapshotsInstalled++
    }
    if (rd.snapshot !== null) this.apply(node, rd.committedEntries.filter(e => e.index > (rd.snapshot?.meta.index ?? 0)))
    node.inFlight = null
    node.core.advance()
    for (const rs of rd.readStates) this.clients.onReadState(node, rs.ctx, rs.index)
    this.clients.onApplied(node)
    node.maybeCompact()
    this.pump(node)
  }

  send (m: Message): void {
    this.stats.messages++
    if (this.blocked.has(`${m.from}>${m.to}`) || this.rng.chance(this.dropRate)) {
      this.stats.dropped++
      return
    }
    this.queue.push(this.now + this.rng.int(1, 15), { t: 'deliver', msg: m })
    if (this.rng.chance(this.dupRate)) {
      this.stats.duplicated++
      this.queue.push(this.now + this.rng.int(1, 40), { t: 'deliver', msg: m })
    }
  }

  private injectFault (): void {
    const r = this.rng.next()
    const ids = this.nodes.map(n => n.id)
    if (r < 0.15) {
      const groups = this.split(ids)
      const oneWay = this.rng.chance(0.3)
      this.blocked = new Set()
      for (const a of groups[0]) {
        for (const b of groups[1]) {
          this.blocked.add(`${a}>${b}`)
          if (!oneWay) this.blocked.add(`${b}>${a}`)
        }
      }
      this.stats.partitions++
      // A partition may look like a failure to some (a false alarm must stay safe).
      for (const a of groups[0]) {
        for (const b of groups[1]) {
          if (this.rng.chance(0.3)) this.queue.push(this.now + this.rng.int(1, 50), { t: 'unreachable', node: this.byId.get(b) as SimNode, peer: a })
        }
      }
      this.emit({ kind: 'partition', at: this.now, groups, oneWay })
    } else if (r < 0.3) {
      if (this.blocked.size > 0) this.emit({ kind: 'heal', at: this.now })
      this.blocked = new Set()
    } else if (r < 0.42) {
      const victim = this.rng.pick(this.nodes.filter(n => n.up))
      if (victim !== undefined) this.crash(victim)
    } else if (r < 0.6) {
      const down = this.nodes.filter(n => !n.up)
      if (down.length > 0) this.restart(this.rng.pick(down))
    } else if (r < 0.7) {
      this.dropRate = this.rng.pick([0, 0, 0.05, 0.2])
      this.dupRate = this.rng.pick([0, 0.05, 0.2])
    } else if (r < 0.8) {
      this.changeMembership()
    } else if (r < 0.86) {
      this.transferLeadership()
    }
  }

  private split (ids: readonly NodeId[]): NodeId[][] {
    const l = this.leader()
    if (l !== undefined && this.rng.chance(0.4)) {
      // The classic case: the leader alone on one side, still believing it leads.
      return [[l.id], ids.filter(id => id !== l.id)]
    }
    const a: NodeId[] = []
    const b: NodeId[] = []
    for (const id of ids) (this.rng.chance(0.5) ? a : b).push(id)
    if (a.length === 0) a.push(b.pop() as NodeId)
    if (b.length === 0) b.push(a.pop() as NodeId)
    return [a, b]
  }

  crash (node: SimNode): void {
    node.crash()
    // Peers notice the closed connection a little later, as a transport would.
    for (const other of this.nodes) {
      if (other !== node) this.queue.push(this.now + this.rng.int(1, 20), { t: 'unreachable', node: other, peer: node.id })
    }
    this.clients.onCrash(node)
    this.stats.crashes++
    this.emit({ kind: 'crash', at: this.now, node: node.id })
  }

  restart (node: SimNode): void {
    node.restart()
    this.emit({ kind: 'restart', at: this.now, node: node.id })
    this.pump(node)
  }

  private changeMembership (): void {
    const l = this.leader()
    if (l === undefined) return
    const { voters, learners } = l.core.config
    const outsiders = this.nodes.map(n => n.id).filter(id => !voters.includes(id) && !learners.includes(id))
    const options: Array<() => void> = []
    if (outsiders.length > 0) {
      const node = this.rng.pick(outsiders)
      options.push(() => l.core.proposeConfChange({ type: 'addLearner', node }))
      options.push(() => l.core.proposeConfChange({ type: 'addVoter', node }))
    }
    if (learners.length > 0) {
      const node = this.rng.pick(learners)
      options.push(() => l.core.proposeConfChange({ type: 'promoteLearner', node }))
      options.push(() => l.core.proposeConfChange({ type: 'removeNode', node }))
    }
    if (voters.length > 3) {
      const node = this.rng.pick(voters)
      options.push(() => l.core.proposeConfChange({ type: 'removeNode', node }))
    }
    if (options.length === 0) return
    try {
      this.rng.pick(options)()
      this.stats.membershipChanges++
      this.emit({ kind: 'membership', at: this.now, change: JSON.stringify(l.core.config) })
    } catch {
      // Refused (a change is pending or the leader is new): a normal outcome.
    }
    this.pump(l)
  }

  private transferLeadership (): void {
    const l = this.leader()
    if (l === undefined) return
    const others = l.core.config.voters.filter(id => id !== l.id)
    if (others.length === 0) return
    const to = this.rng.pick(others)
    try {
      l.core.transferLeadership(to)
      this.stats.transfers++
      this.emit({ kind: 'transfer', at: this.now, from: l.id, to })
    } catch {
      // A transfer already running refuses the next: fine.
    }
    this.pump(l)
  }

  /** Faults stop: the network heals and every crashed node restarts. */
  healAll (): void {
    this.faultsOn = false
    this.blocked = new Set()
    this.dropRate = 0
    this.dupRate = 0
    this.emit({ kind: 'heal', at: this.now })
    for (const n of this.nodes) if (!n.up) this.restart(n)
  }
}

/** Runs one seed. */
export function simulate (opts: SimOptions): SimResult {
  return new Simulator(opts).run()
}
