/**
 * N example clinic servers (examples/clinic-server/server.ts), one process
 * each, sharing one database: start them, SIGKILL, restart, SIGSTOP and
 * SIGCONT them by PID, and stop them all. Each node may be placed in a
 * network namespace: its command is then prefixed (`ip netns exec <ns>`)
 * and it listens on its namespace's address instead of 127.0.0.1.
 *
 * Only processes this launcher spawned are signalled, by their PIDs.
 * Children run in their own process group, with an IPC channel, and stop
 * when it closes, so they also go when this process dies; `killAllNow()`
 * is synchronous for a process 'exit' handler.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { ClusterStatus } from '../lib/index.js'
import { freePort } from './local-cluster.js'
import { LOOPBACK, placedCommand, type Placement } from './placement.js'
import { TS_IMPORT } from './ts-import.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const SERVER = join(root, 'examples', 'clinic-server', 'server.ts')

export type { Placement } from './placement.js'

export interface ClinicProcessesOptions {
  readonly nodes: number
  /** PostgreSQL URL; without it the nodes share a SQLite file in the run's directory. */
  readonly databaseUrl?: string
  /** Purge task period in ms (server --purge-every). */
  readonly purgeEveryMs: number
  readonly placement?: (index: number) => Placement
  /** How long a (re)started node may take to answer /health/ready. Default 60 s. */
  readonly readyTimeoutMs?: number
}

export interface ClinicNode {
  readonly index: number
  readonly id: string
  readonly http: string
  readonly dataDir: string
  readonly proc: ChildProcess | null
  /** True from /health/ready answering 200 after a (re)start until the process ends. */
  readonly ready: boolean
  readonly paused: boolean
  /** The last lines the node wrote to stderr. */
  readonly stderr: readonly string[]
}

interface NodeState {
  index: number
  id: string
  placement: Placement
  httpPort: number
  meshPort: number
  http: string
  dataDir: string
  proc: ChildProcess | null
  ready: boolean
  paused: boolean
  stderr: string[]
}

export interface ClinicProcessesEvents {
  /** A node's process ended, whoever ended it; `code` 75 is the library's quorum-loss panic. */
  exit: [{ node: number, code: number | null, signal: NodeJS.Signals | null }]
}

export class ClinicProcesses extends EventEmitter<ClinicProcessesEvents> {
  readonly secret = randomBytes(24).toString('hex')
  private stopping = false

  private constructor (readonly dir: string, readonly database: { file: string } | { url: string }, private readonly state: NodeState[], private readonly opts: ClinicProcessesOptions) {
    super()
  }

  /**
   * Picks ports and directories; `start()` then launches the nodes. Two
   * steps, so a caller holds the launcher (and can kill what it spawned)
   * while the nodes start.
   */
  static async prepare (opts: ClinicProcessesOptions): Promise<ClinicProcesses> {
    if (!Number.isInteger(opts.nodes) || opts.nodes < 1) throw new Error(`nodes must be a positive integer, not ${opts.nodes}`)
    const dir = await mkdtemp(join(tmpdir(), 'raftmesh-clinic-'))
    const state: NodeState[] = []
    for (let i = 0; i < opts.nodes; i++) {
      const placement = opts.placement?.(i) ?? LOOPBACK
      const httpPort = await freePort()
      state.push({ index: i, id: `n${i + 1}`, placement, httpPort, meshPort: await freePort(), http: `http://${placement.host}:${httpPort}`, dataDir: join(dir, `n${i + 1}`), proc: null, ready: false, paused: false, stderr: [] })
    }
    const database = opts.databaseUrl === undefined ? { file: join(dir, 'clinic.db') } : { url: opts.databaseUrl }
    return new ClinicProcesses(dir, database, state, opts)
  }

  /** Starts every node and resolves once each answers /health/ready; on failure stops them all. */
  async start (): Promise<void> {
    try {
      // The first node is bootstrapped through by the others on the first start.
      await Promise.all(this.state.map(async n => { await this.launch(n, n.index === 0 ? [] : [this.meshAddr(this.state[0])]) }))
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  get nodes (): readonly ClinicNode[] { return this.state }

  private meshAddr (n: NodeState): string { return `/ip4/${n.placement.host}/tcp/${n.meshPort}` }

  private async launch (n: NodeState, bootstrap: string[]): Promise<void> {
    if (this.stopping) throw new Error('the cluster is stopping')
    const args = [...TS_IMPORT, SERVER, '--node-id', n.id, '--data-dir', n.dataDir, '--host', n.placement.host,
      '--http-port', String(n.httpPort), '--mesh-port', String(n.meshPort), '--expect', String(this.state.length),
      '--purge-every', String(this.opts.purgeEveryMs), ...bootstrap.flatMap(b => ['--bootstrap', b]),
      ...('file' in this.database ? ['--db', this.database.file] : [])]
    const [cmd, argv] = placedCommand(n.placement, process.execPath, args)
    const env = { ...process.env, CLUSTER_SECRET: this.secret, ...('url' in this.database ? { DATABASE_URL: this.database.url } : {}) }
    // Its own process group: a Ctrl-C in the terminal reaches the launcher, which decides when the nodes stop.
    const proc = spawn(cmd, argv, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true })
    n.proc = proc
    n.paused = false
    n.stderr.length = 0
    createInterface({ input: proc.stderr as NodeJS.ReadableStream }).on('line', line => {
      n.stderr.push(line)
      if (n.stderr.length > 40) n.stderr.shift()
    })
    const exited = new Promise<string>(resolve => {
      proc.once('exit', (code, signal) => {
        if (n.proc === proc) { n.proc = null; n.ready = false; n.paused = false }
        this.emit('exit', { node: n.index, code, signal })
        resolve(`${n.id} exited (${signal ?? `code ${code}`}) before it was ready: ${n.stderr.slice(-5).join(' | ')}`)
      })
    })
    const listening = new Promise<void>(resolve => {
      createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', line => { if (line.includes('"listening"')) resolve() })
    })
    const deadline = Date.now() + (this.opts.readyTimeoutMs ?? 60_000)
    const ready = (async () => {
      await listening
      while (Date.now() < deadline) {
        const res = await fetch(`${n.http}/health/ready`, { signal: AbortSignal.timeout(1000) }).catch(() => null)
        if (res?.status === 200) return
        await new Promise(resolve => setTimeout(resolve, 200))
      }
      throw new Error(`${n.id} was not ready within ${this.opts.readyTimeoutMs ?? 60_000} ms: ${n.stderr.slice(-5).join(' | ')}`)
    })()
    const outcome = await Promise.race([ready.then(() => null), exited])
    if (outcome !== null) throw new Error(outcome)
    n.ready = n.proc === proc
  }

  private node (i: number): NodeState {
    const n = this.state[i]
    if (n === undefined) throw new Error(`no node ${i}`)
    return n
  }

  /** This node's /cluster/status, or null when it does not answer within `timeoutMs`. */
  async status (i: number, timeoutMs = 800): Promise<ClusterStatus | null> {
    const n = this.node(i)
    if (n.proc === null || n.paused) return null
    try {
      const res = await fetch(`${n.http}/cluster/status`, { signal: AbortSignal.timeout(timeoutMs) })
      return res.ok ? await res.json() as ClusterStatus : null
    } catch {
      return null
    }
  }

  /** SIGKILL, and resolve once the process is gone. */
  async kill (i: number): Promise<void> {
    const p = this.node(i).proc
    if (p === null) return
    const gone = new Promise(resolve => p.once('exit', resolve))
    p.kill('SIGKILL')
    await gone
  }

  /** Starts a node that is down again from its data directory, bootstrapping through every other node. */
  async restart (i: number): Promise<void> {
    const n = this.node(i)
    if (n.proc !== null) throw new Error(`${n.id} is still running`)
    await this.launch(n, this.state.filter(x => x !== n).map(x => this.meshAddr(x)))
  }

  pause (i: number): void {
    const n = this.node(i)
    if (n.proc === null || n.paused) return
    n.proc.kill('SIGSTOP')
    n.paused = true
  }

  resume (i: number): void {
    const n = this.node(i)
    if (n.proc === null || !n.paused) return
    n.proc.kill('SIGCONT')
    n.paused = false
  }

  /** SIGKILLs every node still running, synchronously (for an 'exit' handler). */
  killAllNow (): void {
    this.stopping = true
    for (const n of this.state) if (n.proc?.pid !== undefined && n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL')
  }

  /** Stops every node (SIGTERM, SIGKILL after `graceMs`) and removes the run's directory unless `keep`. */
  async stop ({ graceMs = 5000, keep = false }: { graceMs?: number, keep?: boolean } = {}): Promise<void> {
    this.stopping = true
    await Promise.all(this.state.map(async n => {
      const p = n.proc
      if (p === null) return
      const gone = new Promise(resolve => p.once('exit', resolve))
      if (n.paused) p.kill('SIGCONT')
      p.kill('SIGTERM')
      const timer = setTimeout(() => { p.kill('SIGKILL') }, graceMs)
      await gone
      clearTimeout(timer)
    }))
    if (!keep) await rm(this.dir, { recursive: true, force: true })
  }
}
