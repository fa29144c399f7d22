/**
 * N processes, each embedding one Cluster (testkit/cluster-node.ts),
 * for the multi-process tests and the lock benchmark: start them (expect: N,
 * each with its own data directory and port, bootstrapping through the
 * first), run lock, queue, schedule, cache and event workloads in them,
 * SIGKILL, restart, SIGSTOP and SIGCONT them, and keep one history of
 * everything: the children's events and the faults this harness injected, on
 * one machine-wide time line. The checkers in testkit/checks/ judge it.
 *
 * The children run on 127.0.0.1 (`network: 'loopback'`), where a partition
 * is the transport's fault layer: each node refuses and hangs up on the
 * peers across the cut. With `network: 'netns'` (root and iproute2) each
 * child runs in a network namespace of its own (testkit/netns.ts) and
 * listens on its host's address, and a partition drops the packets across
 * the cut: connections go silent and new ones time out, as on a real
 * network, and the library is not told. The history is the same either way.
 *
 * Only the children this harness spawned are ever signalled, by their own
 * process objects; they exit by themselves when this process dies (IPC).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { silentLogger } from '../gossip/logger.js'
import { loadOrCreatePeerKey } from '../gossip/peer-key.js'
import type { ClusterStatus } from '../lib/index.js'
import { machineNow, type CacheContents, type CacheWorkload, type ChildMessage, type CycleLoop, type CycleTimes, type EventWorkload, type LockWorkload, type NodeConfig, type NodeEvent, type ProcessWorkload, type ProduceWorkload, type QueueState, type Request, type RequestBody, type ScheduleWorkload } from './cluster-node-protocol.js'
import { CLOCK_RATE_ENV, parseClockRate } from './clock-skew.js'
import { freePort } from './local-cluster.js'
import { NetnsLab } from './netns.js'
import { LOOPBACK, placedCommand, type Placement } from './placement.js'
import { TS_IMPORT } from './ts-import.js'

export { machineNow, type CacheContents, type CacheWorkload, type CycleLoop, type CycleTimes, type EventWorkload, type LockWorkload, type NodeEvent, type ProcessWorkload, type ProduceWorkload, type QueueState, type ScheduleWorkload, type WriteTag } from './cluster-node-protocol.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const entry = join(root, 'testkit', 'cluster-node.ts')
const clockSkewShim = join(root, 'testkit', 'clock-skew-preload.ts')

/** A fault or lifecycle step this harness applied to node `node`. */
export type HarnessEvent = { readonly at: number } & (
  | { readonly type: 'started', readonly pid: number }
  | { readonly type: 'killed', readonly signal: NodeJS.Signals }
  | { readonly type: 'paused' }
  | { readonly type: 'resumed' }
  | { readonly type: 'exited', readonly code: number | null, readonly signal: NodeJS.Signals | null }
  /** Cut off (the transport's fault layer, or the network on netns) from the nodes of `from` (indexes). */
  | { readonly type: 'partitioned', readonly from: readonly number[] }
  | { readonly type: 'healed' }
)

/** One line of the history: what happened, on which node (index into `nodes`). */
export type HistoryEntry = (NodeEvent | HarnessEvent) & { readonly node: number }

export interface ClusterProcessesOptions {
  readonly nodes: number
  /** Default 10,000 (the library's). */
  readonly sessionTtlMs?: number
  /** Default 5,000 (the library's). */
  readonly panicAfterMs?: number
  /** Raft tick; default the library's (50 ms). */
  readonly tickMs?: number
  readonly electionTicks?: number
  /** Default 'report': a panicked node stays up (see NodeConfig.onPanic). */
  readonly onPanic?: 'exit' | 'report'
  /** Log at this pino level to each child's stderr (kept in `stderr`). */
  readonly logLevel?: string
  /** Extra environment for every child. */
  readonly env?: Record<string, string>
  /** Default 'loopback'; 'netns' needs root and iproute2 (see testkit/netns.ts `netnsAvailable`). */
  readonly network?: 'loopback' | 'netns'
  /**
   * Node i's clocks and timers run at `clockRates[i]` times real time, through
   * every restart (testkit/clock-skew.ts); missing or 1: real time. The
   * history stays on real time.
   */
  readonly clockRates?: readonly number[]
}

export interface ProcessNode {
  readonly index: number
  readonly id: string
  /** The libp2p listen address, with `/p2p/<peer id>`. */
  readonly addr: string
  readonly dataDir: string
  /** The running process, or null while it is down. */
  readonly proc: ChildProcess | null
  /** True while SIGSTOPped by {@link ClusterProcesses.pause}. */
  readonly paused: boolean
  /** The last lines the process wrote to stderr, for diagnostics. */
  readonly stderr: readonly string[]
}

interface NodeState {
  index: number
  id: string
  addr: string
  listen: string
  placement: Placement
  dataDir: string
  proc: ChildProcess | null
  paused: boolean
  stderr: string[]
  pending: Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>
}

export interface ClusterProcessesEvents {
  /** Every history entry, as it is recorded. */
  entry: [HistoryEntry]
}

export class ClusterProcesses extends EventEmitter<ClusterProcessesEvents> {
  /** Everything that happened, in the order this process recorded it (sort by `at` for the time line). */
  readonly history: HistoryEntry[] = []
  private readonly state: NodeState[]
  private readonly secret = randomBytes(24).toString('hex')
  private nextRequest = 0
  private stopped = false

  /** Where the children run: 127.0.0.1, or a namespace each (node i is the lab's host i). */
  readonly network: 'loopback' | 'netns'

  private constructor (readonly dir: string, state: NodeState[], private readonly opts: ClusterProcessesOptions, private readonly lab: NetnsLab | null) {
    super()
    this.state = state
    this.network = lab === null ? 'loopback' : 'netns'
  }

  /** Starts `opts.nodes` processes and resolves once every one has joined; on failure stops what started (and the lab). */
  static async start (opts: ClusterProcessesOptions): Promise<ClusterProcesses> {
    for (const r of opts.clockRates ?? []) parseClockRate(String(r))
    const lab = opts.network === 'netns' ? await NetnsLab.create({ hosts: opts.nodes }) : null
    let procs: ClusterProcesses | null = null
    try {
      const dir = await mkdtemp(join(tmpdir(), 'raftmesh-procs-'))
      const state: NodeState[] = []
      for (let i = 0; i < opts.nodes; i++) {
        const dataDir = join(dir, `n${i + 1}`)
        // The key is created before the first start so that bootstrap addresses can name the peer.
        const peerId = peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir, silentLogger)).toString()
        const placement = lab?.placement(i) ?? LOOPBACK
        // Each namespace has ports of its own: one free here is free there too.
        const listen = `/ip4/${placement.host}/tcp/${await freePort()}`
        state.push({ index: i, id: `n${i + 1}`, addr: `${listen}/p2p/${peerId}`, listen, placement, dataDir, proc: null, paused: false, stderr: [], pending: new Map() })
      }
      procs = new ClusterProcesses(dir, state, opts, lab)
      const p = procs
      await Promise.all(state.map(async n => { await p.launch(n, n.index === 0 ? [] : [state[0].addr]) }))
      return procs
    } catch (err) {
      if (procs !== null) await procs.stop()
      else await lab?.destroy()
      throw err
    }
  }

  /** The nodes, by index. */
  get nodes (): readonly ProcessNode[] {
    return this.state
  }

  /** Starts a lock workload on node `i`; resolves with the id its events carry. */
  async startWorkload (i: number, workload: LockWorkload): Promise<string> {
    return await this.request(i, { op: 'workload', workload }) as string
  }

  /** Starts a queue producer on node `i`; resolves with the id its events carry. */
  async startProducer (i: number, workload: ProduceWorkload): Promise<string> {
    return await this.request(i, { op: 'produce', workload }) as string
  }

  /** Starts `queue.process()` on node `i` (stopped by {@link stopWorkloads}); resolves with the id its events carry. */
  async startProcessor (i: number, workload: ProcessWorkload): Promise<string> {
    return await this.request(i, { op: 'process', workload }) as string
  }

  /** Registers a scheduled task on node `i` (stopped by {@link stopWorkloads}); resolves with the id its events carry. */
  async startSchedule (i: number, workload: ScheduleWorkload): Promise<string> {
    return await this.request(i, { op: 'schedule', workload }) as string
  }

  /**
   * Starts the cache workload on node `i` (stopped by {@link stopWorkloads}); resolves with the id its events carry.
   * Give every node the same `dbDir` (e.g. under {@link dir}): it is the database the invalidation cache fronts.
   */
  async startCacheWorkload (i: number, workload: CacheWorkload): Promise<string> {
    return await this.request(i, { op: 'cache', workload }) as string
  }

  /** Node `i`'s entries of a replicated cache, sorted by key. */
  async cacheContents (i: number, cache: string): Promise<CacheContents> {
    return await this.request(i, { op: 'cache-contents', cache }) as CacheContents
  }

  /** Starts the event workload on node `i` (stopped by {@link stopWorkloads}); resolves with the id its events carry. */
  async startEventWorkload (i: number, workload: EventWorkload): Promise<string> {
    return await this.request(i, { op: 'events', workload }) as string
  }

  /**
   * Splits the nodes into the given sides (indexes; nodes named on no side
   * form one more side). On loopback, each running node's transport refuses
   * and hangs up on the peers across the cut, and a node restarted during a
   * partition starts whole: heal before restarting. On netns the network
   * drops the packets across the cut, for every node, running or not.
   * Each running node's history gets a `partitioned` entry either way.
   */
  async partition (...sides: ReadonlyArray<readonly number[]>): Promise<void> {
    const named = new Set(sides.flat())
    const rest = this.state.map(n => n.index).filter(i => !named.has(i))
    const all = rest.length > 0 ? [...sides, rest] : sides
    const sideOf = new Map<number, number>()
    all.forEach((side, k) => { for (const i of side) sideOf.set(i, k) })
    const cutOff = (n: NodeState): number[] => this.state.filter(o => sideOf.get(o.index) !== sideOf.get(n.index)).map(o => o.index)
    const lab = this.lab
    if (lab !== null) {
      const at = machineNow()
      await lab.partition(all)
      for (const n of this.state) if (n.proc !== null) this.record(n.index, { type: 'partitioned', from: cutOff(n), at })
      return
    }
    await Promise.all(this.state.filter(n => n.proc !== null).map(async n => {
      const others = cutOff(n)
      this.record(n.index, { type: 'partitioned', from: others, at: machineNow() })
      await this.request(n.index, { op: 'partition', deny: others.map(o => peerIdOf(this.state[o].addr)) })
    }))
  }

  /** Lifts every partition. */
  async heal (): Promise<void> {
    const lab = this.lab
    if (lab !== null) {
      await lab.heal()
      const at = machineNow()
      for (const n of this.state) if (n.proc !== null) this.record(n.index, { type: 'healed', at })
      return
    }
    await Promise.all(this.state.filter(n => n.proc !== null).map(async n => {
      await this.request(n.index, { op: 'heal' })
      this.record(n.index, { type: 'healed', at: machineNow() })
    }))
  }

  /** Node `i`'s applied view of a queue: stats and dead letters. */
  async queueState (i: number, queue: string): Promise<QueueState> {
    return await this.request(i, { op: 'queue-state', queue }) as QueueState
  }

  /**
   * Every job node `i`'s workers hold does a step of work now if still valid; resolves with how many did. Sent to a
   * SIGSTOPped node, it runs after SIGCONT before any timer: call it, then {@link resume}, then await it.
   */
  async touchJobs (i: number): Promise<number> {
    return await this.request(i, { op: 'touch-jobs' }) as number
  }

  /** Stops node `i`'s workloads and resolves once each has reported `workload-done`. */
  async stopWorkloads (i: number): Promise<void> {
    await this.request(i, { op: 'stop-workloads' })
  }

  /** Runs acquire → release back to back on node `i` and resolves with the timings (see CycleLoop). */
  async cycle (i: number, loop: CycleLoop): Promise<CycleTimes> {
    return await this.request(i, { op: 'cycle', loop }) as CycleTimes
  }

  /** Node `i`'s `cluster.status()`. */
  async status (i: number): Promise<ClusterStatus> {
    return await this.request(i, { op: 'status' }) as ClusterStatus
  }

  /** The index of the node the running, unpaused nodes agree is the leader; waits for one. */
  async leader (timeoutMs = 20_000): Promise<number> {
    const until = Date.now() + timeoutMs
    for (;;) {
      const up = this.state.filter(n => n.proc !== null && !n.paused)
      const views = await Promise.all(up.map(async n => (await this.status(n.index)).raft.leader))
      const index = this.state.findIndex(n => n.id === views[0])
      if (index >= 0 && views.every(v => v === views[0]) && up.includes(this.state[index])) return index
      if (Date.now() > until) throw new Error(`no agreed leader within ${timeoutMs} ms (views: ${views.join(', ')})`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  /** Resolves with the first history entry (recorded from now on) that matches; rejects after `timeoutMs`. */
  async waitFor (match: (e: HistoryEntry) => boolean, timeoutMs: number, what = 'event'): Promise<HistoryEntry> {
    return await new Promise((resolve, reject) => {
      const onEntry = (e: HistoryEntry): void => {
        if (!match(e)) return
        clearTimeout(timer)
        this.off('entry', onEntry)
        resolve(e)
      }
      const timer = setTimeout(() => {
        this.off('entry', onEntry)
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))
      }, timeoutMs)
      this.on('entry', onEntry)
    })
  }

  /** Sends `signal` (default SIGKILL) to node `i` and resolves once its process has exited. */
  async kill (i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const n = this.state[i]
    const p = n.proc
    if (p === null) return
    const gone = new Promise(resolve => p.once('exit', resolve))
    this.record(i, { type: 'killed', signal, at: machineNow() })
    p.kill(signal)
    // A stopped process only acts on SIGKILL; any other signal waits for it to run again.
    if (n.paused && signal !== 'SIGKILL') this.resume(i)
    await gone
  }

  /** Starts node `i` again after a kill: same data directory, port and node id. */
  async restart (i: number): Promise<void> {
    const n = this.state[i]
    if (n.proc !== null) throw new Error(`${n.id} is still running`)
    await this.launch(n, this.state.filter(x => x !== n).map(x => x.addr))
  }

  /** SIGSTOPs node `i`: it stays connected but does nothing, as a process in a long GC pause or a frozen VM. */
  pause (i: number): void {
    const n = this.state[i]
    if (n.proc === null || n.paused) return
    n.paused = true
    this.record(i, { type: 'paused', at: machineNow() })
    n.proc.kill('SIGSTOP')
  }

  /** SIGCONTs node `i`. */
  resume (i: number): void {
    const n = this.state[i]
    if (n.proc === null || !n.paused) return
    n.paused = false
    n.proc.kill('SIGCONT')
    this.record(i, { type: 'resumed', at: machineNow() })
  }

  /** Stops node `i` cleanly (its workloads, then `cluster.stop()`) and waits for the process to exit. */
  async stopNode (i: number): Promise<void> {
    const p = this.state[i].proc
    if (p === null) return
    const gone = new Promise(resolve => p.once('exit', resolve))
    this.resume(i)
    await this.request(i, { op: 'stop' })
    await gone
  }

  /** Stops every node (SIGKILL after 5 s without a clean stop), removes their data and deletes the lab's namespaces. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    try {
      await Promise.all(this.state.map(async n => {
        if (n.proc === null) return
        const clean = this.stopNode(n.index).then(() => true, () => false)
        const late = new Promise<boolean>(resolve => setTimeout(() => { resolve(false) }, 5000).unref())
        if (!await Promise.race([clean, late])) await this.kill(n.index)
      }))
      await rm(this.dir, { recursive: true, force: true })
    } finally {
      await this.lab?.destroy()
    }
  }

  private async launch (n: NodeState, bootstrap: string[]): Promise<void> {
    const config: NodeConfig = {
      name: 'procs',
      nodeId: n.id,
      dataDir: n.dataDir,
      listen: n.listen,
      bootstrap,
      expect: this.state.length,
      sessionTtlMs: this.opts.sessionTtlMs ?? 10_000,
      panicAfterMs: this.opts.panicAfterMs ?? 5_000,
      tickMs: this.opts.tickMs,
      electionTicks: this.opts.electionTicks,
      onPanic: this.opts.onPanic ?? 'report',
      logLevel: this.opts.logLevel
    }
    const rate = this.opts.clockRates?.[n.index] ?? 1
    const skew = rate === 1 ? [] : ['--import', clockSkewShim]
    const [cmd, argv] = placedCommand(n.placement, process.execPath, [...TS_IMPORT, ...skew, entry, JSON.stringify(config)])
    const proc = spawn(cmd, argv, {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'advanced',
      env: { ...process.env, ...this.opts.env, RAFTMESH_SECRET: this.secret, ...(rate === 1 ? {} : { [CLOCK_RATE_ENV]: String(rate) }) }
    })
    n.proc = proc
    n.paused = false
    this.record(n.index, { type: 'started', pid: proc.pid ?? -1, at: machineNow() })
    proc.stderr?.setEncoding('utf8').on('data', (s: string) => {
      n.stderr.push(...s.split('\n').filter(l => l.length > 0))
      if (n.stderr.length > 50) n.stderr.splice(0, n.stderr.length - 50)
    })
    proc.on('message', (msg: ChildMessage) => {
      if (msg.kind === 'event') {
        this.record(n.index, msg.event)
        return
      }
      const waiter = n.pending.get(msg.id)
      n.pending.delete(msg.id)
      if (msg.ok) waiter?.resolve(msg.value)
      else waiter?.reject(new Error(`${n.id}: ${msg.error}`))
    })
    proc.once('exit', (code, signal) => {
      if (n.proc === proc) {
        n.proc = null
        n.paused = false
      }
      this.record(n.index, { type: 'exited', code, signal, at: machineNow() })
      for (const w of n.pending.values()) w.reject(new Error(`${n.id} exited (${String(code ?? signal)})`))
      n.pending.clear()
    })
    await new Promise<void>((resolve, reject) => {
      let out = ''
      const onData = (s: string): void => {
        out += s
        // Only whole lines: the last piece may still be arriving.
        if (!out.split('\n').slice(0, -1).some(l => l.includes('"event":"ready"'))) return
        proc.stdout?.off('data', onData)
        proc.stdout?.resume()
        proc.off('exit', onExit)
        resolve()
      }
      const onExit = (code: number | null): void => { reject(new Error(`${n.id} exited with ${String(code)} before it was ready: ${n.stderr.join(' | ')}`)) }
      proc.stdout?.setEncoding('utf8').on('data', onData)
      proc.once('exit', onExit)
    })
  }

  private async request (i: number, body: RequestBody): Promise<unknown> {
    const n = this.state[i]
    const p = n.proc
    if (p === null) throw new Error(`${n.id} is not running`)
    const id = ++this.nextRequest
    return await new Promise((resolve, reject) => {
      n.pending.set(id, { resolve, reject })
      const req: Request = { ...body, id }
      p.send(req)
    })
  }

  private record (node: number, e: NodeEvent | HarnessEvent): void {
    const entry = { ...e, node } as HistoryEntry
    this.history.push(entry)
    this.emit('entry', entry)
  }
}

/** The peer id a `/p2p/` multiaddr ends with. */
export function peerIdOf (addr: string): string {
  return addr.slice(addr.lastIndexOf('/p2p/') + '/p2p/'.length)
}
