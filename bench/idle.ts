/**
 * `npm run bench -- idle [--runs N] [--seconds S]` (issue 13: "a 3-node
 * cluster doing nothing uses ≤ 10 ms of CPU per second per node"): three
 * processes each embedding a Cluster (bench/procs/idle-peer.ts, expect: 3,
 * on 127.0.0.1), left alone; after 5 s to settle, each node's process CPU,
 * context switches, memory growth, and Raft messages and mesh calls sent
 * are taken over S seconds (default 20). Each run measures the library's
 * defaults (Raft quiescence on) and then the same with `quiesceAfterTicks: 0`
 * (heartbeats always on), each on a fresh cluster, so the two are compared
 * under the same machine conditions.
 *
 * `--profile` also runs the V8 CPU profiler in every node over the measured
 * window (which then costs more CPU: read the rows of a run without it) and
 * reports where each node's busy time went, by function and by module; the
 * .cpuprofile files stay in the folder it names.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { silentLogger } from '../gossip/logger.js'
import { loadOrCreatePeerKey } from '../gossip/peer-key.js'
import { freePort } from '../testkit/local-cluster.js'
import { summariseProfile, type CpuProfile, type SelfTime } from './cpu-profile.js'
import type { IdleSample } from './procs/idle-peer.js'
import { BenchChild } from './transport.js'

const peerScript = join(dirname(fileURLToPath(import.meta.url)), 'procs', 'idle-peer.ts')
const SETTLE_MS = 5000
const TARGET_CPU_MS_PER_S = 10

export interface IdleNodeRow {
  readonly node: string
  readonly role: string
  readonly cpuMsPerS: number
  readonly voluntarySwitchesPerS: number
  readonly involuntarySwitchesPerS: number
  readonly rssGrowthKiB: number
  readonly raftMessagesPerS: number
  readonly meshCallsPerS: number
  /** With --profile: the node's sampled busy time in the window, and where it went. */
  readonly profile?: { readonly file: string, readonly busyMs: number, readonly topFunctions: SelfTime[], readonly topModules: SelfTime[] }
}

export interface IdleRun {
  readonly run: number
  readonly quiescence: boolean
  readonly load: number
  readonly nodes: IdleNodeRow[]
}

export interface IdleResult {
  readonly bench: 'idle'
  readonly seconds: number
  readonly targetCpuMsPerS: number
  readonly runs: IdleRun[]
}

function positive (flags: string[], name: string, dflt: number): number {
  const i = flags.indexOf(`--${name}`)
  if (i < 0) return dflt
  const n = Number(flags[i + 1])
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${flags[i + 1]}`)
  return n
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

async function measure (run: number, quiescence: boolean, seconds: number, profileDir: string | null): Promise<IdleRun> {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-bench-idle-'))
  const secret = randomBytes(32).toString('hex')
  const children: BenchChild[] = []
  try {
    const nodes: Array<{ nodeId: string, dataDir: string, listen: string, addr: string }> = []
    for (let i = 1; i <= 3; i++) {
      const dataDir = join(dir, `n${i}`)
      // The key exists before the first start so that bootstrap addresses can name the peer.
      const peerId = peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir, silentLogger)).toString()
      const listen = `/ip4/127.0.0.1/tcp/${await freePort()}`
      nodes.push({ nodeId: `n${i}`, dataDir, listen, addr: `${listen}/p2p/${peerId}` })
    }
    for (const n of nodes) {
      const arg = { nodeId: n.nodeId, dataDir: n.dataDir, listen: n.listen, bootstrap: nodes.filter(m => m !== n).map(m => m.addr), ...(quiescence ? {} : { quiesceAfterTicks: 0 }) }
      children.push(new BenchChild(n.nodeId, peerScript, arg, { RAFTMESH_BENCH_SECRET: secret }))
    }
    await Promise.all(children.map(async c => await c.ready))
    await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
    const sample = async (): Promise<IdleSample[]> => await Promise.all(children.map(async c => (await c.call<{ sample: IdleSample }>({ type: 'sample' })).sample))
    const profileFile = (i: number): string => join(profileDir ?? '', `run${run}-${quiescence ? 'quiesce' : 'noquiesce'}-${children[i].name}.cpuprofile`)
    const ask = async (c: BenchChild, msg: { type: string, path?: string }): Promise<void> => {
      const r = await c.call<{ error?: string }>(msg)
      if (r.error !== undefined) throw new Error(`${c.name}: ${r.error}`)
    }
    const before = await sample()
    if (profileDir !== null) await Promise.all(children.map(async c => { await ask(c, { type: 'profile-start' }) }))
    const from = performance.now()
    await new Promise(resolve => setTimeout(resolve, seconds * 1000))
    if (profileDir !== null) await Promise.all(children.map(async (c, i) => { await ask(c, { type: 'profile-stop', path: profileFile(i) }) }))
    const after = await sample()
    const profiles = profileDir === null
      ? null
      : await Promise.all(children.map(async (_c, i) => {
        const summary = summariseProfile(JSON.parse(await readFile(profileFile(i), 'utf8')) as CpuProfile, root, 12)
        return { file: profileFile(i), busyMs: summary.busyMs, topFunctions: summary.topFunctions, topModules: summary.topModules }
      }))
    const s = (performance.now() - from) / 1000
    const rate = (a: number, b: number): number => Math.round((b - a) / s * 10) / 10
    return {
      run,
      quiescence,
      load: Math.round(loadavg()[0] * 100) / 100,
      nodes: after.map((b, i) => {
        const a = before[i]
        return {
          node: children[i].name,
          role: b.role,
          cpuMsPerS: rate(a.cpuUs / 1000, b.cpuUs / 1000),
          voluntarySwitchesPerS: rate(a.voluntarySwitches, b.voluntarySwitches),
          involuntarySwitchesPerS: rate(a.involuntarySwitches, b.involuntarySwitches),
          rssGrowthKiB: Math.round((b.rssBytes - a.rssBytes) / 1024),
          raftMessagesPerS: rate(a.raftSent, b.raftSent),
          meshCallsPerS: rate(a.rpcCalls, b.rpcCalls),
          ...(profiles === null ? {} : { profile: profiles[i] })
        }
      })
    }
  } finally {
    await Promise.all(children.map(async c => { await c.stop() }))
    await rm(dir, { recursive: true, force: true })
  }
}

export async function runIdleBench (flags: string[]): Promise<IdleResult> {
  const runs = positive(flags, 'runs', 1)
  const seconds = positive(flags, 'seconds', 20)
  const profileDir = flags.includes('--profile') ? await mkdtemp(join(tmpdir(), 'raftmesh-idle-profiles-')) : null
  if (profileDir !== null) process.stderr.write(`idle: CPU profiles go to ${profileDir}\n`)
  const out: IdleRun[] = []
  for (let run = 1; run <= runs; run++) {
    for (const quiescence of [true, false]) {
      process.stderr.write(`idle run ${run}/${runs}, quiescence ${quiescence ? 'on' : 'off'}: ${SETTLE_MS / 1000} s to settle, ${seconds} s measured\n`)
      out.push(await measure(run, quiescence, seconds, profileDir))
    }
  }
  return { bench: 'idle', seconds, targetCpuMsPerS: TARGET_CPU_MS_PER_S, runs: out }
}

export function idleTable (r: IdleResult): string {
  const lines = [
    `| run | quiescence | load | node | role | CPU ms/s | voluntary switches/s | involuntary/s | RSS growth KiB | Raft msgs sent/s | mesh calls/s |`,
    '| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |'
  ]
  for (const run of r.runs) {
    for (const n of run.nodes) {
      lines.push(`| ${run.run} | ${run.quiescence ? 'on' : 'off'} | ${run.load} | ${n.node} | ${n.role} | ${n.cpuMsPerS} | ${n.voluntarySwitchesPerS} | ${n.involuntarySwitchesPerS} | ${n.rssGrowthKiB} | ${n.raftMessagesPerS} | ${n.meshCallsPerS} |`)
    }
  }
  const on = r.runs.filter(x => x.quiescence).flatMap(x => x.nodes.map(n => n.cpuMsPerS))
  const worst = on.length === 0 ? NaN : Math.max(...on)
  lines.push('', `target: ≤ ${r.targetCpuMsPerS} CPU ms/s per node with the defaults; worst node here ${worst} ms/s: ${worst <= r.targetCpuMsPerS ? 'met' : 'not met'}`)
  for (const run of r.runs) {
    for (const n of run.nodes) {
      if (n.profile === undefined) continue
      lines.push('', `profile, run ${run.run}, quiescence ${run.quiescence ? 'on' : 'off'}, ${n.node} (${n.role}): ${n.profile.busyMs.toFixed(0)} ms busy in ${r.seconds} s`)
      lines.push('  modules: ' + n.profile.topModules.slice(0, 8).map(m => `${m.name} ${m.pct}%`).join(', '))
      for (const f of n.profile.topFunctions.slice(0, 10)) lines.push(`  ${String(f.pct).padStart(5)}%  ${f.selfMs.toFixed(1).padStart(7)} ms  ${f.name}`)
    }
  }
  return lines.join('\n')
}
