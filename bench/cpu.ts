/**
 * `npm run bench -- cpu [--baseline <rev>] [--runs N] [--quick] [--current-env NAME=value]` (issue 15):
 * what one committed entry costs the leader and a follower of a 3-process
 * kv cluster (examples/kv-node.ts, started as `npm run bench -- kv` starts
 * it), for a baseline revision (default `main`, extracted to a temporary
 * directory) and this tree, both up at once and measured in alternating
 * blocks so the ratio is taken under the same machine conditions; each run
 * starts a fresh pair of clusters, in turns.
 *
 * Each block is a fixed closed-loop load (64, then 256 PUTs in flight) on
 * one cluster while the other idles. Per committed entry: event-loop busy
 * time, process CPU (user, system), entries per fsync, Raft messages and
 * mesh bytes. Then a CPU profile of each leader (and a follower) under the
 * first load, summarised by self time.
 */
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LocalKvCluster, type LocalNode } from '../testkit/local-cluster.js'
import { extractRevision } from './baseline-tree.js'
import { summariseProfile, type CpuProfile, type ProfileSummary } from './cpu-profile.js'
import { ask, hasTransportStats, perEntry, readCounters, type PerEntry } from './cpu-sample.js'
import { clusterPut } from './kv.js'
import { concurrentPuts, median, round2 } from './kv-workload.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const probe = join(root, 'bench', 'procs', 'cpu-probe.ts')
const LOADS = [64, 256]

interface Build {
  readonly name: 'baseline' | 'current'
  readonly root: string
  readonly commit: string
  readonly cluster: LocalKvCluster
  readonly transportStats: boolean
}

export interface CpuBlock {
  readonly run: number
  readonly build: Build['name']
  readonly inFlight: number
  readonly leaderId: string
  readonly entries: number
  readonly entriesPerSecond: number
  /** The leader changed during the block: its figures mix two leaders. */
  readonly leaderChanged: boolean
  readonly leader: PerEntry
  readonly follower: PerEntry
}

export interface RatioSeries { perRun: number[], median: number, runsAtMostHalf: number }

export interface CpuBenchResult {
  bench: 'cpu'
  baseline: { rev: string, commit: string }
  current: { commit: string, dirty: boolean, env: Record<string, string> }
  settings: { runs: number, blockSeconds: number, warmupSeconds: number, profileSeconds: number, loads: number[] }
  blocks: CpuBlock[]
  /** Per build and load: the median over runs of each figure. */
  medians: Array<{ build: Build['name'], inFlight: number, entriesPerSecond: number, leader: PerEntry, follower: PerEntry }>
  /**
   * The leader's cost per entry, current over baseline, per run and load
   * (adjacent blocks of the same run): event-loop busy time (the issue's
   * target) and process CPU (user + system), which leaves out the time the
   * loop waits in an inline fdatasync or is preempted on a busy machine.
   */
  leaderRatios: Array<{ inFlight: number, busy: RatioSeries, cpu: RatioSeries }>
  profiles: Array<{ build: Build['name'], role: 'leader' | 'follower', file: string, summary: ProfileSummary }>
}

function parseFlags (flags: string[]): { baseline: string, runs: number, quick: boolean, currentEnv: Record<string, string> } {
  const value = (name: string): string | undefined => { const i = flags.indexOf(name); return i < 0 ? undefined : flags[i + 1] }
  const quick = flags.includes('--quick')
  const runs = Number(value('--runs') ?? (quick ? 1 : 5))
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error('--runs takes a whole number from 1 to 50')
  // A setting tried on the current build's nodes only (`--current-env RAFTMESH_FSYNC=threadpool`): an A/B of the setting.
  const env = value('--current-env')
  const m = env === undefined ? null : /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(env)
  if (env !== undefined && m === null) throw new Error('--current-env takes NAME=value')
  return { baseline: value('--baseline') ?? 'main', runs, quick, currentEnv: m === null ? {} : { [m[1]]: m[2] } }
}

async function roles (c: LocalKvCluster): Promise<{ leader: LocalNode, follower: LocalNode, term: number }> {
  const leader = await c.waitForLeader()
  const s = await c.status(leader)
  const follower = c.nodes.find(n => n !== leader && n.proc !== null)
  if (follower === undefined || s === null) throw new Error('no follower running')
  return { leader, follower, term: s.term as number }
}

async function measureBlock (b: Build, run: number, inFlight: number, seconds: number): Promise<CpuBlock> {
  const c = b.cluster
  const r0 = await roles(c)
  const s0 = await c.status(r0.leader)
  const [l0, f0] = await Promise.all([readCounters(r0.leader, b.transportStats), readCounters(r0.follower, b.transportStats)])
  const { seconds: elapsed } = await concurrentPuts(clusterPut(c), inFlight, seconds)
  const [l1, f1] = await Promise.all([readCounters(r0.leader, b.transportStats), readCounters(r0.follower, b.transportStats)])
  const s1 = await c.status(r0.leader)
  const entries = (s1?.commitIndex ?? 0) - (s0?.commitIndex ?? 0)
  if (entries <= 0) throw new Error(`${b.name}: nothing committed in a ${seconds} s block`)
  return {
    run,
    build: b.name,
    inFlight,
    leaderId: r0.leader.id,
    entries,
    entriesPerSecond: Math.round(entries / elapsed),
    leaderChanged: s1?.role !== 'leader' || s1?.term !== r0.term,
    leader: perEntry(l0, l1, entries),
    follower: perEntry(f0, f1, entries)
  }
}

async function profileBuild (b: Build, dir: string, inFlight: number, seconds: number): Promise<CpuBenchResult['profiles']> {
  const { leader, follower } = await roles(b.cluster)
  const nodes = [{ role: 'leader' as const, n: leader }, { role: 'follower' as const, n: follower }]
  await Promise.all(nodes.map(async ({ n }) => await ask(n, 'cpu-probe', { op: 'profile-start' })))
  await concurrentPuts(clusterPut(b.cluster), inFlight, seconds)
  return await Promise.all(nodes.map(async ({ role, n }) => {
    const file = join(dir, `${b.name}-${role}.cpuprofile`)
    await ask(n, 'cpu-probe', { op: 'profile-stop', path: file }, 30_000)
    const summary = summariseProfile(JSON.parse(await readFile(file, 'utf8')) as CpuProfile, b.root)
    return { build: b.name, role, file, summary }
  }))
}

function medianOf (blocks: CpuBlock[], role: 'leader' | 'follower'): PerEntry {
  const keys = Object.keys(blocks[0][role]) as Array<keyof PerEntry>
  const m = (k: keyof PerEntry): number | null => {
    const xs = blocks.map(b => b[role][k]).filter((x): x is number => x !== null)
    return xs.length === 0 ? null : median(xs)
  }
  return Object.fromEntries(keys.map(k => [k, m(k)])) as unknown as PerEntry
}

async function startBuild (name: Build['name'], treeRoot: string, commit: string, env: Record<string, string>): Promise<Build> {
  // 256 in flight must reach the leader as 256 requests, not queue in the client's agent.
  const cluster = await LocalKvCluster.start({ nodes: 3, root: treeRoot, nodeArgs: ['--import', probe], clientSockets: 512, env })
  const { leader } = await roles(cluster)
  return { name, root: treeRoot, commit, cluster, transportStats: await hasTransportStats(leader) }
}

export async function runCpuBench (flagArgs: string[] = []): Promise<CpuBenchResult> {
  const { baseline: rev, runs, quick, currentEnv } = parseFlags(flagArgs)
  const blockSeconds = quick ? 2 : 5
  const warmupSeconds = quick ? 2 : 10
  const profileSeconds = quick ? 2 : 5
  const { execFileSync } = await import('node:child_process')
  const git = (...args: string[]): string => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim()
  const current = { commit: git('rev-parse', 'HEAD'), dirty: git('status', '--porcelain', '--untracked-files=no').length > 0, env: currentEnv }
  const tree = await extractRevision(root, rev)
  const running: Build[] = []
  try {
    const blocks: CpuBlock[] = []
    const profiles: CpuBenchResult['profiles'] = []
    for (let run = 0; run < runs; run++) {
      // Fresh clusters every run, started in turns: in one pair of clusters
      // kept for a whole run, identical code differed by x1.4 in busy time
      // per entry at 64 in flight, the same way in all five runs (fsyncs
      // took twice as long on one), which a pair per run averages out.
      const order: Array<[Build['name'], string, string]> = [['baseline', tree.dir, tree.commit], ['current', root, current.commit]]
      for (const [name, dir, commit] of run % 2 === 0 ? order : order.reverse()) running.push(await startBuild(name, dir, commit, name === 'current' ? currentEnv : {}))
      // V8 optimises the hot paths over seconds of traffic (see kv-workload.ts); both builds get the same.
      for (const b of running) await concurrentPuts(clusterPut(b.cluster), LOADS[0], warmupSeconds)
      for (const inFlight of LOADS) {
        // The build that goes first takes turns, so neither always follows the other's load.
        for (const b of inFlight === LOADS[0] ? running : [...running].reverse()) {
          const block = await measureBlock(b, run, inFlight, blockSeconds)
          blocks.push(block)
          process.stderr.write(`cpu: run ${run + 1}/${runs} ${b.name} ${inFlight} in flight: ${block.entriesPerSecond} entries/s, leader ${block.leader.busyUs} µs busy/entry, ${Math.round((block.leader.userUs + block.leader.systemUs) * 10) / 10} µs CPU/entry\n`)
        }
      }
      if (run === runs - 1) {
        const dir = await mkdtemp(join(tmpdir(), 'raftmesh-cpu-profiles-'))
        for (const b of running) profiles.push(...await profileBuild(b, dir, LOADS[0], profileSeconds))
      }
      for (const b of running.splice(0)) await b.cluster.stop()
    }
    const builds = ['baseline', 'current'] as const
    const medians = builds.flatMap(name => LOADS.map(inFlight => {
      const bs = blocks.filter(x => x.build === name && x.inFlight === inFlight)
      return { build: name, inFlight, entriesPerSecond: median(bs.map(x => x.entriesPerSecond)), leader: medianOf(bs, 'leader'), follower: medianOf(bs, 'follower') }
    }))
    const series = (inFlight: number, of: (p: PerEntry) => number): RatioSeries => {
      const perRun = Array.from({ length: runs }, (_, run) => {
        const at = (name: Build['name']): CpuBlock | undefined => blocks.find(x => x.run === run && x.inFlight === inFlight && x.build === name)
        const c = at('current')
        const b = at('baseline')
        return c === undefined || b === undefined ? NaN : round2(of(c.leader) / of(b.leader))
      })
      return { perRun, median: median(perRun), runsAtMostHalf: perRun.filter(r => r <= 0.5).length }
    }
    const leaderRatios = LOADS.map(inFlight => ({ inFlight, busy: series(inFlight, p => p.busyUs), cpu: series(inFlight, p => p.userUs + p.systemUs) }))
    return {
      bench: 'cpu',
      baseline: { rev, commit: tree.commit },
      current,
      settings: { runs, blockSeconds, warmupSeconds, profileSeconds, loads: LOADS },
      blocks,
      medians,
      leaderRatios,
      profiles
    }
  } finally {
    for (const b of running) await b.cluster.stop()
    await tree.remove()
  }
}

const cell = (x: number | null, w: number): string => String(x ?? '-').padStart(w)

export function cpuTable (r: CpuBenchResult): string {
  const lines = [
    `baseline ${r.baseline.rev} (${r.baseline.commit.slice(0, 9)}) against current ${r.current.commit.slice(0, 9)}${r.current.dirty ? ' + uncommitted changes' : ''}${Object.entries(r.current.env ?? {}).map(([k, v]) => ` with ${k}=${v}`).join('')}; ${r.settings.runs} runs of ${r.settings.blockSeconds} s blocks; medians over runs; per committed entry`,
    'in flight build    role      entries/s busy µs   ELU  user µs  sys µs entries/fsync msgs out msgs in bytes out bytes in'
  ]
  for (const m of r.medians) {
    for (const role of ['leader', 'follower'] as const) {
      const p = m[role]
      lines.push(`${String(m.inFlight).padStart(9)} ${m.build.padEnd(8)} ${role.padEnd(9)} ${cell(m.entriesPerSecond, 9)} ${cell(p.busyUs, 7)} ${cell(p.elu, 5)} ${cell(p.userUs, 8)} ${cell(p.systemUs, 7)} ${cell(p.entriesPerFsync, 13)} ${cell(p.msgsOut, 8)} ${cell(p.msgsIn, 7)} ${cell(p.bytesOut, 9)} ${cell(p.bytesIn, 8)}`)
    }
  }
  const series = (s: RatioSeries): string => `${s.perRun.map(v => `x${v}`).join(' ')}, median x${s.median}, at or under x0.5 in ${s.runsAtMostHalf}/${s.perRun.length}`
  for (const x of r.leaderRatios) {
    lines.push(`leader per entry, current/baseline, ${x.inFlight} in flight: busy ${series(x.busy)}; CPU ${series(x.cpu)}`)
  }
  const changed = r.blocks.filter(b => b.leaderChanged).length
  if (changed > 0) lines.push(`note: the leader changed during ${changed} block(s)`)
  for (const p of r.profiles) {
    const s = p.summary
    lines.push(`profile ${p.build} ${p.role} (${r.settings.loads[0]} in flight, ${s.wallMs} ms, busy ${s.busyMs} ms, GC ${s.gcMs} ms): ${p.file}`)
    const n = p.role === 'leader' ? 15 : 8
    for (const f of s.topFunctions.slice(0, n)) lines.push(`  ${cell(f.selfMs, 8)} ms ${cell(f.pct, 5)}%  ${f.name}`)
    lines.push(`  by module: ${s.topModules.slice(0, 8).map(m => `${m.name} ${m.pct}%`).join(', ')}`)
  }
  return lines.join('\n')
}
