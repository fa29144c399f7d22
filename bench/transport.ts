/**
 * `npm run bench -- transport`: the Raft transport between two real
 * processes on 127.0.0.1 (libp2p over TCP, private network with a random
 * secret, noise, yamux). This process runs node `a`; a child process
 * (bench/procs/transport-peer.ts) runs node `b` and answers every Heartbeat
 * with a HeartbeatResp at once. Measured:
 *
 * - sequential: one Heartbeat → HeartbeatResp round trip at a time, after a
 *   warm-up (which also opens the long-lived stream in each direction);
 * - pipelined: `inFlight` round trips kept outstanding for `seconds`, giving
 *   the message rate (two Raft messages per round trip) and the round-trip
 *   latency under that load.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { createMeshNode, type MeshNode } from '../gossip/node.js'
import { heartbeatRoundTrips } from './heartbeat-round-trip.js'
import { Libp2pRaftTransport, type RaftTransportStats } from '../gossip/raft-transport.js'
import { Latency, type LatencySummary } from './latency.js'
import { LOOPBACK, placedCommand, type Placement } from '../testkit/placement.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * A benchmark child process: `node --import tsx <script> <arg>` with an IPC
 * channel (structured-clone serialization, so typed arrays travel as such).
 * The child sends `{type:'ready', ...}` once started and answers
 * `{id, type, ...}` requests with a message carrying the same id; it exits
 * when the channel closes, and may send `{type:'crash', error}` before it
 * dies of an uncaught exception. Only this process's own children are ever killed,
 * by their PID.
 */
export class BenchChild {
  readonly proc: ChildProcess
  readonly name: string
  /** The child's `ready` message. */
  readonly ready: Promise<Record<string, unknown>>
  /** What the child reported as the reason it crashed ({type:'crash', error}), if it did. */
  crash: string | null = null
  private readonly lines: string[] = []
  private readonly pending = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }>()
  private nextId = 1
  exited = false
  private readonly exitedP: Promise<void>

  /** `placement`: where the child runs (testkit/placement.ts); this machine's loopback by default. */
  constructor (name: string, script: string, arg: unknown, env: Record<string, string>, placement: Placement = LOOPBACK) {
    this.name = name
    const [cmd, argv] = placedCommand(placement, process.execPath, ['--import', 'tsx', script, JSON.stringify(arg)])
    this.proc = spawn(cmd, argv, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      serialization: 'advanced'
    })
    this.proc.stdout?.setEncoding('utf8').on('data', (s: string) => {
      this.lines.push(...s.split('\n').filter(l => l.length > 0))
      if (this.lines.length > 20) this.lines.splice(0, this.lines.length - 20)
    })
    this.exitedP = new Promise(resolve => {
      this.proc.once('exit', (code, signal) => {
        this.exited = true
        const err = new Error(`bench child ${name} (pid ${this.proc.pid ?? '?'}) exited (code ${code}, signal ${signal}); last output: ${this.lines.join(' | ')}`)
        for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(err) }
        this.pending.clear()
        resolve()
      })
    })
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`bench child ${name} not ready within 30 s`)) }, 30_000)
      this.proc.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`bench child ${name} exited before it was ready (code ${code}, signal ${signal})`)) })
      this.proc.on('message', (m: { id?: number, type?: string, error?: string }) => {
        if (m.type === 'ready') { clearTimeout(timer); resolve(m as Record<string, unknown>) }
        if (m.type === 'crash') this.crash = String(m.error)
      })
    })
    this.ready.catch(() => {})
    this.proc.on('message', (m: { id?: number }) => {
      const p = m.id === undefined ? undefined : this.pending.get(m.id)
      if (p === undefined || m.id === undefined) return
      this.pending.delete(m.id)
      clearTimeout(p.timer)
      p.resolve(m)
    })
  }

  /** Sends a request and resolves with the child's answer. */
  async call<T> (msg: { type: string, [k: string]: unknown }, timeoutMs = 10_000): Promise<T> {
    if (this.exited || !this.proc.connected) throw new Error(`bench child ${this.name} is gone`)
    const id = this.nextId++
    return await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`bench child ${this.name} did not answer ${msg.type} within ${timeoutMs} ms`)) }, timeoutMs)
      this.pending.set(id, { resolve, reject, timer })
      this.proc.send({ ...msg, id })
    })
  }

  /** Sends a message that gets no answer. */
  post (msg: { type: string, [k: string]: unknown }): void {
    if (!this.exited && this.proc.connected) this.proc.send(msg)
  }

  /** Closes the IPC channel (the child stops cleanly); SIGKILLs it by PID if it has not exited within 5 s. */
  async stop (): Promise<void> {
    if (this.exited) return
    if (this.proc.connected) this.proc.disconnect()
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(true) }, 5000) })
    const killed = await Promise.race([this.exitedP.then(() => false), late])
    clearTimeout(timer)
    if (killed && !this.exited) {
      this.proc.kill('SIGKILL')
      await this.exitedP
    }
  }
}

/** This process's mesh node 'a' with the Raft transport, joined to the far-end process 'b' (bench/procs/transport-peer.ts). */
export interface BenchPair {
  readonly child: BenchChild
  readonly mesh: MeshNode
  readonly transport: Libp2pRaftTransport
  stop(): Promise<void>
}

export async function startBenchPair (name: string): Promise<BenchPair> {
  const dir = await mkdtemp(join(tmpdir(), `raftmesh-bench-${name}-`))
  const secret = randomBytes(32).toString('hex')
  const clusterName = `bench-${name}`
  const child = new BenchChild('b', join(root, 'bench', 'procs', 'transport-peer.ts'), { nodeId: 'b', clusterName, dataDir: join(dir, 'b') }, { RAFTMESH_BENCH_SECRET: secret })
  let mesh: MeshNode | null = null
  let transport: Libp2pRaftTransport | null = null
  const stop = async (): Promise<void> => {
    await transport?.close()
    await mesh?.stop()
    await child.stop()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const ready = await child.ready as { multiaddrs: string[] }
    const m = mesh = await createMeshNode({ nodeId: 'a', clusterName, appVersion: 'bench', dataDir: join(dir, 'a'), secret, bootstrap: ready.multiaddrs })
    await waitFor('node b to join', () => m.membership.isAlive('b'), 15_000)
    transport = await Libp2pRaftTransport.create(m)
    return { child, mesh: m, transport, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

export async function waitFor (what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<void> {
  const end = performance.now() + timeoutMs
  for (;;) {
    if (await cond()) return
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

export interface TransportBenchOptions {
  /** Sequential round trips before measuring. Default 500. */
  readonly warmup?: number
  /** Sequential round trips measured. Default 5000 (bounded by 30 s). */
  readonly roundTrips?: number
  /** Round trips kept outstanding in the pipelined run. Default 256. */
  readonly inFlight?: number
  /** Seconds of the pipelined run. Default 3. */
  readonly seconds?: number
}

export interface TransportBenchResult {
  bench: 'transport'
  setup: string
  message: string
  sequential: LatencySummary & { seconds: number }
  pipelined: {
    inFlight: number
    seconds: number
    roundTrips: number
    roundTripsPerSecond: number
    messagesPerSecond: number
    latency: LatencySummary
    /** CPU time each process used during the run, in cores (1 = one core busy the whole time). */
    cpuCores: { a: number, b: number }
  }
  /** Counters of both ends at the end of the run: nothing may be dropped or bad. */
  stats: { a: RaftTransportStats, b: RaftTransportStats & { answered: number } }
}

const r2 = (x: number): number => Math.round(x * 100) / 100

export async function runTransportBench (opts: TransportBenchOptions = {}): Promise<TransportBenchResult> {
  const warmup = opts.warmup ?? 500
  const roundTrips = opts.roundTrips ?? 5000
  const inFlight = opts.inFlight ?? 256
  const seconds = opts.seconds ?? 3
  const pair = await startBenchPair('transport')
  try {
    const { child, transport: t } = pair

    const roundTrip = heartbeatRoundTrips(t, 'a', 'b')

    const warmEnd = performance.now() + 10_000
    for (let i = 0; i < warmup && performance.now() < warmEnd; i++) await roundTrip()

    const seqLat = new Latency()
    const seqStart = performance.now()
    const seqEnd = seqStart + 30_000
    for (let i = 0; i < roundTrips && performance.now() < seqEnd; i++) {
      const t0 = performance.now()
      await roundTrip()
      seqLat.since(t0)
    }
    const seqSeconds = (performance.now() - seqStart) / 1000

    type BStats = { answered: number, transport: RaftTransportStats, cpu: NodeJS.CpuUsage }
    const bCpu0 = (await child.call<BStats>({ type: 'stats' })).cpu
    const aCpu0 = process.cpuUsage()
    const pipeLat = new Latency()
    let done = 0
    const start = performance.now()
    const end = start + seconds * 1000
    const worker = async (): Promise<void> => {
      while (performance.now() < end && done < 50_000_000) {
        const t0 = performance.now()
        await roundTrip()
        pipeLat.since(t0)
        done++
      }
    }
    await Promise.all(Array.from({ length: inFlight }, worker))
    const elapsed = (performance.now() - start) / 1000
    const aCpu = process.cpuUsage(aCpu0)
    const bStats = await child.call<BStats>({ type: 'stats' })
    const cpuShare = (u0: NodeJS.CpuUsage, u1: NodeJS.CpuUsage): number => r2((u1.user + u1.system - u0.user - u0.system) / 1e6 / elapsed)
    return {
      bench: 'transport',
      setup: '2 processes on 127.0.0.1: libp2p TCP + pre-shared-key private network + noise + yamux; Raft messages on the long-lived /raftmesh/raft/1.0.0 stream of each direction',
      message: 'Heartbeat a→b, answered at once by HeartbeatResp b→a (msgpack frames of a few tens of bytes)',
      sequential: { ...seqLat.summary(), seconds: r2(seqSeconds) },
      pipelined: {
        inFlight,
        seconds: r2(elapsed),
        roundTrips: done,
        roundTripsPerSecond: Math.round(done / elapsed),
        messagesPerSecond: Math.round(2 * done / elapsed),
        latency: pipeLat.summary(),
        cpuCores: { a: cpuShare({ user: 0, system: 0 }, aCpu), b: cpuShare(bCpu0, bStats.cpu) }
      },
      stats: { a: t.stats(), b: { ...bStats.transport, answered: bStats.answered } }
    }
  } finally {
    await pair.stop()
  }
}

export function transportTable (r: TransportBenchResult): string {
  const s = r.sequential
  const p = r.pipelined
  return [
    'raft transport, 2 processes     p50 ms   p99 ms   max ms        rate',
    `sequential round trip   ${String(s.p50Ms).padStart(10)} ${String(s.p99Ms).padStart(8)} ${String(s.maxMs).padStart(8)} ${String(Math.round(s.count / s.seconds)).padStart(8)} rt/s`,
    `${p.inFlight} in flight          ${String(p.latency.p50Ms).padStart(10)} ${String(p.latency.p99Ms).padStart(8)} ${String(p.latency.maxMs).padStart(8)} ${String(p.messagesPerSecond).padStart(8)} msg/s (${p.roundTripsPerSecond} rt/s)`
  ].join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await runTransportBench()
  console.log(JSON.stringify(r, null, 2))
  console.error(transportTable(r))
}
