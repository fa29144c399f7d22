/**
 * The Cluster a server process embeds: one node of the mesh and of the
 * coordination log, handing out locks and elections by name (as
 * Hazelcast's instance hands out its structures). It wires the pieces:
 * the libp2p mesh and its calls, the Raft node over them, the coordination
 * state machine on the log, this node's session, and the leader's duties.
 */
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import type { Registry } from 'prom-client'
import { createMeshNode, type MeshNode } from '../gossip/node.js'
import { loadOrCreatePeerKey } from '../gossip/peer-key.js'
import { errorFields, silentLogger, type Logger } from '../gossip/logger.js'
import { MeshRpc } from '../gossip/rpc.js'
import { Libp2pRaftTransport } from '../gossip/raft-transport.js'
import { FileLogStore, NotLeaderError, RaftNode, type RaftStatus, type SoftState } from '../raft/index.js'
import { Autopilot, JOIN_METHOD } from './autopilot.js'
import { systemClock, type Clock } from './clock.js'
import type { CommandResult } from './coordination/commands.js'
import { CoordinationState } from './coordination/state.js'
import { Cache, type CacheOptions } from './cache/cache.js'
import { Elections, type Election } from './election.js'
import { EventBus } from './events/events.js'
import type { ClusterHttpHandler, HttpHandlerOptions } from './http/handler.js'
import type { ServiceHost } from './service-host.js'
import { ClusterStoppedError, InvalidArgumentError, SessionLostError } from './errors.js'
import { decideFormation, encodeInfo, INFO_METHOD, sleep } from './formation.js'
import { LeaderSessions } from './leader-sessions.js'
import { CommandBatcher } from './batcher.js'
import { LeaderClaims } from './queues/leader-claims.js'
import { Queue, type QueueOptions } from './queues/queue.js'
import { QueueService } from './queues/queue-service.js'
import { LeaderTicks } from './scheduler/leader-ticks.js'
import { Files } from './files/files.js'
import type { Schedule } from './scheduler/schedule-spec.js'
import { SchedulerService, type ScheduledTask, type ScheduleOptions, type TaskContext } from './scheduler/scheduler.js'
import type { AcquireOptions, LockHandle } from './lock-handle.js'
import { LockService } from './locks.js'
import { ClusterMonitor } from './monitor.js'
import { loadOrCreateNodeId } from './node-identity.js'
import { PANIC_EXIT_CODE, parseOptions, type ClusterOptions, type PanicInfo, type ResolvedOptions } from './options.js'
import { Proposer } from './proposer.js'
import { ReentrantScope } from './reentrancy.js'
import { SessionKeeper } from './session.js'
import { buildStatus, type ClusterStatus } from './status.js'

export interface ClusterEvents {
  /** The Raft leader changed (null while there is none). */
  leader: [{ leader: string | null, term: number }]
  /** A node of the cluster joined the mesh (or came back). */
  'member-up': [{ id: string }]
  /** A node left the mesh, or failed (stopped answering). */
  'member-down': [{ id: string, reason: 'left' | 'failed' }]
  /** This node has not been part of a majority for panicAfterMs; its lock handles have aborted. */
  panic: [PanicInfo]
}

/** A name-scoped lock; see `cluster.lock(name)`. */
export interface Lock {
  readonly name: string
  /** Waits (FIFO) until granted, `timeoutMs` passes (LockTimeoutError) or `signal` aborts. */
  acquire(opts?: AcquireOptions): Promise<LockHandle>
  /** Takes the lock if it is free now; null if another holder has it. */
  tryAcquire(opts?: { signal?: AbortSignal }): Promise<LockHandle | null>
  /** The holder as applied on this node (may lag the leader): its node and fence, or null. */
  holder(): { node: string, fence: bigint } | null
}

interface Parts {
  readonly opts: ResolvedOptions
  readonly nodeId: string
  readonly log: Logger
  readonly clock: Clock
  readonly mesh: MeshNode
  readonly rpc: MeshRpc
  readonly transport: Libp2pRaftTransport
  readonly state: CoordinationState
  readonly raft: RaftNode<CommandResult>
  readonly proposer: Proposer
  readonly leaderSessions: LeaderSessions
  readonly keeper: SessionKeeper
  readonly locks: LockService
  readonly queues: QueueService
  readonly leaderClaims: LeaderClaims
  readonly scheduler: SchedulerService
  readonly batcher: CommandBatcher
  readonly leaderTicks: LeaderTicks
  readonly autopilot: Autopilot
  readonly host: ServiceHost
  readonly events: EventBus
}

export class Cluster extends EventEmitter<ClusterEvents> {
  /** This node's id (kept in the data directory). */
  readonly id: string
  private readonly p: Parts
  private readonly elections: Elections
  private readonly caches = new Map<string, Cache<unknown, unknown>>()
  private readonly queues = new Map<string, Queue<unknown>>()
  /**
   * Cluster-wide events: at least once to every node, deduplicated, in
   * per-publisher order, gaps repaired from the publisher's buffer;
   * `{ ordered: true }` goes through the Raft log for one total order.
   */
  readonly events: EventBus
  /**
   * A small replicated file store on the coordination log (configuration,
   * resources): put, get, list, delete, watch, and a mirror to a local folder.
   */
  readonly files: Files
  private readonly reentrant = new ReentrantScope()
  private stopping: Promise<void> | null = null
  private panicInfo: (PanicInfo & { at: number }) | null = null
  private readonly monitor: ClusterMonitor

  private constructor (p: Parts) {
    super()
    this.p = p
    this.id = p.nodeId
    this.events = p.events
    this.elections = new Elections(p.locks, p.state)
    this.files = new Files({ state: p.state, batcher: p.batcher, keeper: p.keeper, log: p.log, isStopped: () => this.stopping !== null })
    this.monitor = new ClusterMonitor({
      nodeId: p.nodeId,
      cluster: this,
      state: p.state,
      raft: () => p.raft.status(),
      status: () => this.status(),
      members: () => p.mesh.membership.list(),
      rpc: () => p.rpc.stats(),
      transport: () => p.transport.stats(),
      badControlFrames: () => p.mesh.badControlFrames,
      gossipLinks: () => p.mesh.gossipLinks.stats(),
      events: () => p.events.stats(),
      caches: () => [...this.caches].map(([name, c]) => [name, c.stats()] as const)
    })
  }

  /**
   * Starts this node and resolves once it has joined: it is a voter or a
   * learner of the cluster, has applied the log up to the commit index it
   * learned when it joined, and holds an open session.
   */
  static async start (options: ClusterOptions): Promise<Cluster> {
    const opts = parseOptions(options)
    opts.signal?.throwIfAborted()
    const log = (opts.logger ?? silentLogger).child({ module: 'cluster' })
    const nodeId = await loadOrCreateNodeId(opts.dataDir, opts.nodeId)
    const nodeLog = log.child({ node: nodeId })
    const mesh = await createMeshNode({
      nodeId,
      clusterName: opts.name,
      appVersion: opts.appVersion,
      dataDir: opts.dataDir,
      secret: opts.secret,
      insecure: opts.insecure,
      listen: opts.listen,
      bootstrap: opts.bootstrap,
      mdns: opts.mdns,
      meta: opts.meta,
      logger: opts.logger
    })
    const abortStart = new AbortController()
    const signal = opts.signal === undefined ? abortStart.signal : AbortSignal.any([opts.signal, abortStart.signal])
    let raft: RaftNode<CommandResult> | null = null
    try {
      const rpc = await MeshRpc.create(mesh)
      rpc.handle(INFO_METHOD, async () => encodeInfo({ formed: raft !== null && raft.status().config.voters.length > 0, leader: raft?.leader ?? null }))
      const raftDir = join(opts.dataDir, 'raft')
      const formation = await decideFormation({ nodeId, raftDir, voters: opts.voters, expect: opts.expect, mesh, calls: rpc, log: nodeLog, signal })
      const state = new CoordinationState()
      const transport = await Libp2pRaftTransport.create(mesh)
      raft = await RaftNode.start<CommandResult>({
        id: nodeId,
        store: new FileLogStore({ dir: raftDir }),
        transport,
        stateMachine: state,
        bootstrap: formation.kind === 'bootstrap' ? formation.voters : undefined,
        tickMs: opts.tickMs,
        electionTick: opts.electionTicks,
        heartbeatTick: opts.heartbeatTicks,
        quiesceAfterTicks: opts.quiesceAfterTicks,
        snapshotEvery: opts.snapshotEvery,
        logger: (opts.logger ?? silentLogger).child({ module: 'raft' })
      })
      const clock = systemClock
      const proposer = new Proposer({ nodeId, raft, calls: rpc, state, clock, log: nodeLog })
      const leaderSessions = new LeaderSessions({ raft, state, proposer, clock, log: nodeLog, checkEveryMs: Math.max(20, Math.floor(opts.sessionTtlMs / 10)) })
      const keeper = new SessionKeeper({ nodeId, ttlMs: opts.sessionTtlMs, panicAfterMs: opts.panicAfterMs, raft, state, proposer, leaderSessions, calls: rpc, clock, log: nodeLog })
      const batcher = new CommandBatcher(proposer, () => clock.monotonic())
      const locks = new LockService({ state, batcher, keeper, log: nodeLog })
      const queues = new QueueService({ state, batcher, keeper, clock, log: nodeLog })
      const leaderClaims = new LeaderClaims({ raft, state, proposer, clock, log: nodeLog, checkEveryMs: opts.tickMs })
      const scheduler = new SchedulerService({ state, batcher, keeper, log: nodeLog })
      const leaderTicks = new LeaderTicks({ raft, state, proposer, clock, log: nodeLog, checkEveryMs: Math.max(10, Math.floor(opts.tickMs / 2)) })
      const autopilot = new Autopilot({ nodeId, raft, mesh, clock, log: nodeLog, maxVoters: opts.maxVoters, deadVoterAfterMs: opts.deadVoterAfterMs })
      const leaderRaft = raft
      rpc.handle(JOIN_METHOD, async (_body, ctx) => {
        if (!leaderRaft.isLeader) throw new NotLeaderError(leaderRaft.leader)
        await autopilot.admit(ctx.from)
        return new TextEncoder().encode(String(leaderRaft.status().commitIndex))
      })
      const host: ServiceHost = { nodeId, mesh, channel: (topic, o) => mesh.channel(topic, o), calls: rpc, logger: opts.logger ?? silentLogger, clock: () => clock.wall() }
      const events = new EventBus(host, {
        privateKey: await loadOrCreatePeerKey(opts.dataDir, nodeLog),
        orderedPublish: async (topic, payload) => {
          const session = await keeper.ensure()
          const { result, index } = await proposer.submit(session, { op: 'publish', topic, payload })
          if (!result.ok) throw new SessionLostError(result.message)
          return index
        }
      })
      state.on('ordered', e => { events.deliverOrdered({ topic: e.topic, payload: e.payload, publisher: e.node, seq: e.index }) })
      const cluster = new Cluster({ opts, nodeId, log: nodeLog, clock, mesh, rpc, transport, state, raft, proposer, leaderSessions, keeper, locks, queues, leaderClaims, scheduler, batcher, leaderTicks, autopilot, host, events })
      cluster.wire()
      await cluster.join(signal)
      return cluster
    } catch (err) {
      abortStart.abort()
      await raft?.stop().catch(() => {})
      await mesh.stop().catch(() => {})
      throw err
    }
  }

  private wire (): void {
    const { raft, mesh, keeper, log } = this.p
    let leader: string | null = raft.leader
    raft.on('state', (s: SoftState) => {
      if (s.leader === leader) return
      leader = s.leader
      this.emit('leader', { leader: s.leader, term: s.term })
    })
    raft.on('error', err => { log.error(errorFields(err), 'raft stopped on a storage error') })
    mesh.membership.on('join', m => { this.emit('member-up', { id: m.nodeId }) })
    mesh.membership.on('leave', m => { this.emit('member-down', { id: m.nodeId, reason: 'left' }) })
    mesh.membership.on('failed', m => {
      raft.reportUnreachable(m.nodeId)
      this.emit('member-down', { id: m.nodeId, reason: 'failed' })
    })
    keeper.on('panic', info => { this.onPanic(info) })
    keeper.on('recovered', () => { this.panicInfo = null })
  }

  /** Becomes a member (asking the leader to add it as a learner if needed), catches up, opens a session. */
  private async join (signal: AbortSignal): Promise<void> {
    const { raft, rpc, keeper, log, nodeId, opts } = this.p
    const deadline = opts.joinTimeoutMs === undefined ? Infinity : Date.now() + opts.joinTimeoutMs
    for (;;) {
      signal.throwIfAborted()
      if (Date.now() > deadline) throw new ClusterStoppedError(`not joined within ${opts.joinTimeoutMs} ms`)
      const { config } = raft.status()
      const member = config.voters.includes(nodeId) || config.learners.includes(nodeId)
      const leader = raft.leader
      try {
        if (!member && leader !== null && leader !== nodeId) {
          await rpc.call(leader, JOIN_METHOD, new Uint8Array(0), { timeoutMs: 5000, signal })
        } else if (!member && leader === null) {
          await this.askMembersToAdmit(signal)
        }
        if (leader !== null) {
          // A read barrier: resolves once this node has applied all that was committed when it asked.
          await raft.readBarrier({ timeoutMs: 5000, signal })
          if (raft.status().config.voters.includes(nodeId) || raft.status().config.learners.includes(nodeId)) break
        }
      } catch (err) {
        signal.throwIfAborted()
        log.debug(errorFields(err), 'not joined yet')
      }
      await sleep(100, signal)
    }
    await keeper.ensure({ signal })
    log.info({ role: raft.status().role }, 'joined the cluster')
  }

  /** A node that knows no leader asks the members it sees; the leader among them admits it. */
  private async askMembersToAdmit (signal: AbortSignal): Promise<void> {
    for (const m of this.p.mesh.members()) {
      try {
        await this.p.rpc.call(m.nodeId, JOIN_METHOD, new Uint8Array(0), { timeoutMs: 2000, signal })
        return
      } catch (err) {
        signal.throwIfAborted()
        this.p.log.debug({ member: m.nodeId, ...errorFields(err) }, 'member did not admit us')
      }
    }
  }

  /**
   * A lock shared by every node of the cluster. Not reentrant unless
   * `reentrant: true`: then an acquire inside a `withLock` callback for the
   * same name (same async context) gets the held lock with a hold count.
   */
  lock (name: string, opts: { reentrant?: boolean } = {}): Lock {
    checkName(name)
    const { locks, state } = this.p
    return {
      name,
      acquire: async (o = {}) => (opts.reentrant === true ? this.reentrant.enter(name) : null) ?? await this.monitor.timeAcquire(async () => await locks.acquire('lock', name, o)),
      tryAcquire: async (opts = {}) => await locks.tryAcquire('lock', name, opts),
      holder: () => {
        const h = state.lock('lock', name)?.holder
        const node = state.holderNode('lock', name)
        return h === null || h === undefined || node === null ? null : { node, fence: BigInt(h.fence) }
      }
    }
  }

  /** Runs `fn` while holding `name`; releases when it settles. `reentrant` as for {@link Cluster.lock}. */
  async withLock<T> (name: string, fn: (h: LockHandle) => Promise<T> | T, opts: AcquireOptions & { reentrant?: boolean } = {}): Promise<T> {
    const h = await this.lock(name, opts).acquire(opts)
    try {
      return await this.reentrant.run(name, h, async () => await fn(h))
    } finally {
      await h.release()
    }
  }

  /** A named election (one winner at a time, observable from every node). */
  election (name: string): Election {
    checkName(name)
    return this.elections.get(name)
  }

  /** The addresses this node listens on, each ending in `/p2p/<peer id>`: give them to others as `bootstrap`. */
  get addresses (): string[] {
    return this.p.mesh.multiaddrs
  }

  /** The libp2p mesh node underneath (advanced use: membership, fault injection in tests). */
  get mesh (): MeshNode {
    return this.p.mesh
  }

  /**
   * A named cache shared by the cluster (see CacheOptions): `replicated`
   * keeps a full copy on every node, `invalidation` keeps local copies and
   * broadcasts invalidations. One instance per name; asking again returns it.
   */
  cache<K, V> (name: string, opts: CacheOptions): Cache<K, V> {
    if (this.stopping !== null) throw new ClusterStoppedError()
    const existing = this.caches.get(name)
    if (existing !== undefined) {
      if (existing.mode !== opts.mode) throw new InvalidArgumentError(`cache ${name} is already open in ${existing.mode} mode`)
      return existing as Cache<K, V>
    }
    const c = new Cache<K, V>(this.p.host, name, opts)
    this.caches.set(name, c as Cache<unknown, unknown>)
    return c
  }

  /**
   * A durable queue on the coordination log (one instance per name; asking
   * again returns it). Items are claimed by one worker at a time, fenced,
   * with a visibility timeout; see Queue.
   */
  queue<T> (name: string, opts: QueueOptions = {}): Queue<T> {
    if (this.stopping !== null) throw new ClusterStoppedError()
    checkName(name)
    let q = this.queues.get(name)
    if (q === undefined) {
      q = new Queue<unknown>(this.p.queues, name, opts)
      this.queues.set(name, q)
    }
    return q as Queue<T>
  }

  /**
   * Registers a task that runs on one node per tick, cluster-wide. Every
   * node registers the same tasks; each tick is assigned on the log to one
   * of them (round robin), which runs `fn` with a fence that increases from
   * tick to tick. A run still going when the next tick comes makes that tick
   * skip. Tasks whose definitions differ between nodes do not run (see
   * `status().schedules`).
   */
  schedule (name: string, schedule: Schedule, fn: (ctx: TaskContext) => Promise<void>, opts: ScheduleOptions = {}): ScheduledTask {
    if (this.stopping !== null) throw new ClusterStoppedError()
    checkName(name)
    return this.p.scheduler.schedule(name, schedule, fn, opts)
  }

  /** Raft's view from this node. */
  raftStatus (): RaftStatus {
    return this.p.raft.status()
  }

  /** Plain JSON: members, Raft, sessions, locks, queues, scheduled tasks, open caches, events, panic. */
  status (): ClusterStatus {
    const { raft, mesh, state, keeper } = this.p
    return buildStatus({ id: this.id, raft: raft.status(), members: mesh.membership.list(), state, session: keeper.session, leaseDeadline: keeper.leaseDeadline, now: this.p.clock.monotonic(), wallNow: this.p.clock.wall(), caches: [...this.caches.values()].map(c => ({ name: c.name, mode: c.mode, stats: c.stats() })), events: this.events.stats(), panic: this.panicInfo })
  }

  /** This node's Prometheus registry (not prom-client's global one); every series has a `node` label. */
  get metrics (): Registry {
    return this.monitor.registry
  }

  /**
   * A request handler for node:http (or Connect/Express) serving status,
   * metrics, the live dashboard and the health probes; see
   * {@link ClusterHttpHandler} for the paths and {@link HttpHandlerOptions}.
   * Mount it behind the server's own authentication, or set `token`.
   */
  httpHandler (opts: HttpHandlerOptions = {}): ClusterHttpHandler {
    return this.monitor.handler(opts)
  }

  /** Leaves cleanly: aborts this node's lock handles, ends its session on the log (its locks are released at once), then stops. */
  async stop (opts: { signal?: AbortSignal } = {}): Promise<void> {
    this.stopping ??= this.shutdown(opts)
    await this.stopping
  }

  private async shutdown (opts: { signal?: AbortSignal }): Promise<void> {
    const { locks, queues, leaderClaims, scheduler, leaderTicks, keeper, leaderSessions, autopilot, proposer, raft, mesh, log } = this.p
    this.monitor.close()
    locks.stop()
    await queues.stop()
    scheduler.stop()
    await keeper.close({ signal: opts.signal, timeoutMs: 3000 })
    for (const c of this.caches.values()) await c.close()
    await this.p.events.close()
    leaderSessions.close()
    leaderClaims.close()
    leaderTicks.close()
    autopilot.close()
    proposer.close()
    await raft.stop()
    await mesh.stop()
    log.info({}, 'stopped')
  }

  private onPanic (info: PanicInfo): void {
    const { log, opts } = this.p
    if (this.stopping !== null) return
    // The LockService heard the keeper's panic first and aborted every handle.
    this.panicInfo = { ...info, at: Date.now() }
    log.error({ ...info }, 'quorum-loss panic')
    this.emit('panic', info)
    if (opts.onPanic !== undefined) {
      opts.onPanic(info)
      return
    }
    void this.stop().finally(() => process.exit(PANIC_EXIT_CODE))
  }
}

function checkName (name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > 256) throw new InvalidArgumentError('a lock, election, queue or task name must be a string of 1-256 characters')
}
