/**
 * A tiny synchronous network of RaftCores for scenario tests, in the style of
 * etcd's raft `newNetwork`: every node has a durable in-memory store, the
 * caller decides when time passes (`tick`) and when messages move
 * (`stabilize`), and faults are filters on delivery (`isolate`, `cut`,
 * `drop`). Every delivered or dropped message can be logged as one line
 * (`n1->n2 Vote term=2 last=1/3`) so a failing scenario reads as a story.
 */
import { RaftCore, type InitialState, type RaftOptions, type ReadState } from '../../raft/core/core.js'
import { encodeConfChange } from '../../raft/core/config.js'
import type { Message } from '../../raft/core/messages.js'
import { Prng } from '../../sim/prng.js'
import { EntryType, type Entry, type HardState, type NodeId, type Snapshot } from '../../raft/types.js'

export type NetworkOptions = Omit<RaftOptions, 'id' | 'random' | 'state' | 'bootstrap'> & {
  /** Seed of every node's election jitter. Default 1. */
  readonly seed?: number
  /** Voters every bootstrap node starts with; the other ids start empty, waiting to be added. Default: all ids. */
  readonly bootstrap?: readonly NodeId[]
  /** Durable state a node starts from instead of a fresh or bootstrapped log. */
  readonly states?: Readonly<Record<NodeId, InitialState>>
  /** Record every delivered and dropped message in `log`. */
  readonly log?: boolean
}

/** What a node's disk holds. */
export interface Durable {
  hardState: HardState
  snapshot: Snapshot | null
  entries: Entry[]
}

export interface NetNode {
  readonly id: NodeId
  core: RaftCore
  readonly durable: Durable
  /** The state machine: the data of every applied Normal entry, in order. */
  values: string[]
  /** Every entry this node ever applied, across restarts (a restart re-applies from its snapshot). */
  readonly applied: Entry[]
  readonly readStates: ReadState[]
  readonly random: Prng
}

type Filter = (m: Message) => boolean

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const bytes = (s: string): Uint8Array => encoder.encode(s)

/** The log a bootstrapped cluster starts with (what RaftCore writes for `bootstrap`). */
export function bootstrapEntries (voters: readonly NodeId[]): Entry[] {
  return [...voters].sort().map((node, i) => ({ index: i + 1, term: 1, type: EntryType.Config, data: encodeConfChange({ type: 'addVoter', node }) }))
}

/** `count` Normal entries of `term` starting at index `from`. */
export function entriesOfTerm (from: number, count: number, term: number): Entry[] {
  return Array.from({ length: count }, (_, i) => ({ index: from + i, term, type: EntryType.Normal, data: bytes(`t${term}-${from + i}`) }))
}

export class Network {
  readonly nodes = new Map<NodeId, NetNode>()
  /** Messages sent but not yet delivered, in send order. */
  pending: Message[] = []
  /** One line per delivered or dropped message, when logging is on. */
  readonly log: string[] = []
  /** Every node seen leading, by term: Election Safety says each set has at most one member. */
  readonly leadersByTerm = new Map<number, Set<NodeId>>()
  private filters: Filter[] = []
  private readonly raftOptions: Omit<NetworkOptions, 'seed' | 'bootstrap' | 'states' | 'log'>
  private readonly bootstrap: readonly NodeId[]
  private readonly logging: boolean

  constructor (ids: readonly NodeId[], opts: NetworkOptions = {}) {
    const { seed = 1, bootstrap = ids, states = {}, log = false, ...raftOptions } = opts
    this.raftOptions = raftOptions
    this.bootstrap = bootstrap
    this.logging = log
    ids.forEach((id, i) => {
      const initial = states[id]
      const durable: Durable = initial === undefined
        ? { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [] }
        : { hardState: initial.hardState, snapshot: initial.snapshot, entries: [...initial.entries] }
      const random = new Prng(seed * 1000 + i)
      this.nodes.set(id, { id, core: this.newCore(id, durable, random), durable, values: snapshotValues(durable), applied: [], readStates: [], random })
    })
  }

  private newCore (id: NodeId, d: Durable, random: Prng): RaftCore {
    return new RaftCore({
      ...this.raftOptions,
      id,
      random: () => random.next(),
      state: { hardState: d.hardState, snapshot: d.snapshot, entries: [...d.entries] },
      bootstrap: this.bootstrap.includes(id) ? this.bootstrap : undefined
    })
  }

  node (id: NodeId): NetNode {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  core (id: NodeId): RaftCore {
    return this.node(id).core
  }

  /** The node that currently believes it leads in the highest term, or null. */
  leader (): NodeId | null {
    let best: RaftCore | null = null
    for (const { core } of this.nodes.values()) {
      if (core.role === 'leader' && (best === null || core.term > best.term)) best = core
    }
    return best?.id ?? null
  }

  // ---- faults ---------------------------------------------------------------

  /** Drops every message to or from `id`. */
  isolate (id: NodeId): void {
    this.filters.push(m => m.from === id || m.to === id)
  }

  /** Drops every message between `a` and `b`, both ways. */
  cut (a: NodeId, b: NodeId): void {
    this.filters.push(m => (m.from === a && m.to === b) || (m.from === b && m.to === a))
  }

  /** Drops every message the predicate matches, decided at delivery time. */
  drop (predicate: Filter): void {
    this.filters.push(predicate)
  }

  /** Heals every partition and drop rule. */
  recover (): void {
    this.filters = []
  }

  // ---- driving ---------------------------------------------------------------

  /** Queues messages as if a node had sent them (e.g. a stale message replayed). */
  send (...msgs: Message[]): void {
    this.pending.push(...msgs)
  }

  /** Starts an election on `id`; call stabilize() to let it run. */
  campaign (id: NodeId): void {
    this.core(id).campaign(false)
    this.observe(this.core(id))
  }

  /** Lets `rounds` ticks pass on every listed node, the network settling after each tick. */
  tick (ids: NodeId | readonly NodeId[], rounds = 1): void {
    const list = typeof ids === 'string' ? [ids] : ids
    for (let i = 0; i < rounds; i++) {
      for (const id of list) {
        this.core(id).tick()
        this.observe(this.core(id))
        this.stabilize()
      }
    }
  }

  /** Ticks the listed nodes round by round until one of `among` leads; returns it. */
  tickUntilLeader (ids: readonly NodeId[], among: readonly NodeId[] = ids, maxRounds = 200): NodeId {
    for (let i = 0; i < maxRounds; i++) {
      const leader = among.find(id => this.core(id).role === 'leader')
      if (leader !== undefined) return leader
      this.tick(ids)
    }
    throw new Error(`no leader among ${among.join(',')} after ${maxRounds} rounds`)
  }

  /**
   * Handles one Ready on every node that has one, following the Ready
   * contract: persist, queue the messages, apply, advance. Returns the
   * messages queued (not yet delivered).
   */
  readyAll (): Message[] {
    const sent: Message[] = []
    for (const node of this.nodes.values()) {
      if (!node.core.hasReady()) continue
      const rd = node.core.ready()
      persist(node.durable, rd.snapshot, rd.entries, rd.hardState)
      sent.push(...rd.messages)
      if (rd.snapshot !== null) node.values = decodeValues(rd.snapshot.data)
      for (const e of rd.committedEntries) {
        node.applied.push(e)
        if (e.type === EntryType.Normal) node.values.push(decoder.decode(e.data))
      }
      node.readStates.push(...rd.readStates)
      node.core.advance()
    }
    this.pending.push(...sent)
    return sent
  }

  /** Delivers every queued message that no filter drops; replies wait for the next call. */
  deliver (): void {
    const batch = this.pending
    this.pending = []
    for (const m of batch) {
      const dropped = this.filters.some(f => f(m))
      if (this.logging) this.log.push(describe(m) + (dropped ? ' (dropped)' : ''))
      const to = this.nodes.get(m.to)
      if (dropped || to === undefined) continue
      to.core.step(m)
      this.observe(to.core)
    }
  }

  /** Handles Readies and delivers messages until nothing is left to do. */
  stabilize (maxRounds = 10_000): void {
    for (let i = 0; i < maxRounds; i++) {
      const busy = [...this.nodes.values()].some(n => n.core.hasReady())
      if (!busy && this.pending.length === 0) return
      this.readyAll()
      this.deliver()
    }
    throw new Error(`network did not settle in ${maxRounds} rounds`)
  }

  // ---- storage ---------------------------------------------------------------

  /** Crash and restart: a new core built from what the node's disk holds. */
  restart (id: NodeId): void {
    const node = this.node(id)
    node.values = snapshotValues(node.durable)
    node.core = this.newCore(id, node.durable, node.random)
  }

  /** Snapshots the node's state machine at its applied index and compacts its log and disk. */
  compact (id: NodeId): Snapshot {
    const node = this.node(id)
    const snap = node.core.compact(node.core.log.applied, bytes(JSON.stringify(node.values)))
    node.durable.snapshot = snap
    node.durable.entries = node.durable.entries.filter(e => e.index > snap.meta.index)
    return snap
  }

  private observe (core: RaftCore): void {
    if (core.role !== 'leader') return
    const set = this.leadersByTerm.get(core.term) ?? new Set<NodeId>()
    set.add(core.id)
    this.leadersByTerm.set(core.term, set)
  }
}

export function newNetwork (ids: readonly NodeId[], opts: NetworkOptions = {}): Network {
  return new Network(ids, opts)
}

/**
 * Writes a Ready to disk: a received snapshot replaces the log (the core
 * emits one only when it discarded its entries), entries replace the suffix
 * from the first one's index, then the hard state.
 */
function persist (d: Durable, snapshot: Snapshot | null, entries: readonly Entry[], hardState: HardState | null): void {
  if (snapshot !== null) {
    d.snapshot = snapshot
    d.entries = []
  }
  if (entries.length > 0) {
    const first = entries[0].index
    d.entries = [...d.entries.filter(e => e.index < first), ...entries]
  }
  if (hardState !== null) d.hardState = hardState
}

function decodeValues (data: Uint8Array): string[] {
  return JSON.parse(decoder.decode(data)) as string[]
}

/** The state machine as the disk's snapshot left it; the log after it is applied again. */
function snapshotValues (d: Durable): string[] {
  return d.snapshot === null ? [] : decodeValues(d.snapshot.data)
}

/** One line per message, etcd style: `from->to Type fields`; positions are term/index. */
function describe (m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`
  switch (m.type) {
    case 'PreVote':
    case 'Vote':
      return `${head} last=${m.lastTerm}/${m.lastIndex}${m.force ? ' force' : ''}`
    case 'PreVoteResp':
    case 'VoteResp':
      return `${head} ${m.reject ? 'rejected' : 'granted'}`
    case 'Append': {
      const range = m.entries.length === 0 ? '[]' : `[${m.entries[0].index}..${m.entries[m.entries.length - 1].index}]`
      return `${head} prev=${m.prevTerm}/${m.prevIndex} entries=${range} commit=${m.commit}`
    }
    case 'AppendResp':
      return m.reject
        ? `${head} reject index=${m.index} hint=${m.hintTerm}/${m.hintIndex}`
        : `${head} index=${m.index}`
    case 'Heartbeat':
      return `${head} commit=${m.commit} readSeq=${m.readSeq}${m.quiesce ? ' quiesce' : ''}`
    case 'HeartbeatResp':
      return `${head} readSeq=${m.readSeq}`
    case 'Commit':
      return `${head} commit=${m.commit}`
    case 'Snapshot':
      return `${head} snap=${m.meta.term}/${m.meta.index} bytes=${m.offset}+${m.chunk.byteLength}/${m.total}`
    case 'SnapshotResp':
      return `${head} snap=${m.snapshotIndex} next=${m.offset}`
    case 'ReadIndex':
      return `${head} ctx=${m.ctx}`
    case 'ReadIndexResp':
      return `${head} ctx=${m.ctx} index=${m.index}`
    case 'TimeoutNow':
      return head
  }
}

/** The member lists the scenarios use. */
export const three = ['n1', 'n2', 'n3']
export const four = ['n1', 'n2', 'n3', 'n4']
export const five = ['n1', 'n2', 'n3', 'n4', 'n5']

/** A cluster in which `leader` won the first election and committed its no-op. */
export function elected (ids: readonly NodeId[], opts: NetworkOptions = {}, leader = 'n1'): Network {
  const net = newNetwork(ids, opts)
  if (opts.leaseRead === true) {
    // With lease reads a booting node refuses votes for one election timeout.
    for (let i = 0; i < 10; i++) for (const id of ids) net.core(id).tick()
  }
  net.campaign(leader)
  net.stabilize()
  if (net.core(leader).role !== 'leader') throw new Error(`${leader} did not win the first election`)
  return net
}

/** The term of entry `index` in a node's log. */
export const termAt = (net: Network, id: NodeId, index: number): number | undefined => net.core(id).log.term(index)
