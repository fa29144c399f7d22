/**
 * `npm run bench -- faults [--runs N] [--seed S] [--duration SECONDS] [--nodes N] [--out DIR] [--keep] [--report DIR] [--etcd N] [--kv N] [--network netns|loopback] [--clock-skew F]`:
 * fault-injection runs (bench/faults/run-once.ts), one after another, each
 * with seed S, S+1, …. Prints a progress line per run on stderr, writes
 * each run's JSON and the SVG plots to the output folder, keeps a failing
 * run's history and logs there (every run's with `--keep`), and prints
 * the command that reruns it. `--report DIR` runs nothing: it prints the
 * summary and draws the plots of the runs a batch left in DIR. `--etcd N`
 * then runs the lock row against etcd 3.4 under the plans of the first N
 * seeds (bench/faults/etcd-row.ts); `--kv N` checks the Raft KV's
 * linearizability under them (bench/faults/kv-row.ts).
 *
 * `--network netns` (the default when this process may build network
 * namespaces: root and iproute2) runs every node, etcd member and KV node
 * in a namespace of its own, so partitions drop real packets, for all three
 * rows; `--network loopback` runs them on 127.0.0.1, where raftmesh's
 * partitions are its transport's fault layer and the etcd and KV rows skip
 * them. The run JSONs and the summary say which.
 *
 * `--clock-skew F` (default 0) runs each raftmesh node's clocks and timers
 * fast or slow by up to F for the whole run, one node at each extreme (see
 * clockRatesFor in bench/faults/nemesis.ts); the library's lease margin
 * covers rates that differ by up to 10%, so F up to 0.05 must pass. The
 * etcd and KV rows run on real time.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { failoverSpec, latencySpec, renderSvg, throughputSpec } from './faults/plots.js'
import { runEtcdOnce, type EtcdRunResult } from './faults/etcd-row.js'
import { runKvOnce, type KvRunResult } from './faults/kv-row.js'
import { runOnce, type RunResult } from './faults/run-once.js'
import { netnsAvailable } from '../testkit/netns.js'
import { Latency, type LatencySummary } from './latency.js'

export interface FaultsResult {
  readonly bench: 'faults'
  readonly command: string
  readonly options: { runs: number, seed: number, durationS: number, nodes: number, network: Network, clockSkew: number }
  readonly out: string
  readonly runs: Array<Omit<RunResult, 'latency' | 'throughput'>>
  readonly summary: {
    runs: number
    failed: number
    violations: number
    faults: Record<string, number>
    failoverMs: LatencySummary
    /** A killed node's restart, from its Cluster.start: seen by every other node in the mesh, in gossipsub, and joined (caught up); `missing` never got there. */
    rejoinMs: Record<'mesh' | 'gossip' | 'joined', LatencySummary & { missing: number }>
    ops: Record<string, number>
    eventsReportedLost: number
    /** Where the nodes ran; `partitions` below count the partitions applied, `partitionsSkipped` those of the plans left out (etcd and KV on loopback). */
    network: Network
    /** The lock checker's verdicts, raftmesh against etcd under the same plans of faults. */
    lockRow: Record<'raftmesh' | 'etcd', { runs: number, failed: number, violations: number, grants: number, partitions: number, partitionsSkipped: number }>
    /** The Raft KV's linearizability under the same plans of faults. */
    kvRow: { runs: number, notLinearizable: number, undecided: number, ops: number, unknown: number, partitions: number, partitionsSkipped: number }
  }
  readonly kvRuns: Array<Omit<KvRunResult, 'wallMs'>>
  readonly etcdRuns: Array<Pick<EtcdRunResult, 'seed' | 'network' | 'ok' | 'violations' | 'faults' | 'partitionsSkipped' | 'leaderWaitsMs' | 'grants' | 'unconfirmedGrants'>>
  readonly plots: string[]
}

type Network = 'loopback' | 'netns'

function positiveInt (name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${v}`)
  return n
}

export async function runFaultsBench (flags: string[]): Promise<FaultsResult> {
  const { values } = parseArgs({ args: flags, options: { runs: { type: 'string' }, seed: { type: 'string' }, duration: { type: 'string' }, nodes: { type: 'string' }, out: { type: 'string' }, keep: { type: 'boolean' }, report: { type: 'string' }, etcd: { type: 'string' }, kv: { type: 'string' }, network: { type: 'string' }, 'clock-skew': { type: 'string' } }, strict: true })
  const runs = positiveInt('runs', values.runs, 10)
  const seed = positiveInt('seed', values.seed, Date.now() % 1_000_000)
  const durationS = positiveInt('duration', values.duration, 30)
  const nodes = positiveInt('nodes', values.nodes, 3)
  if (runs < 1) throw new Error('--runs must be at least 1')
  if (nodes < 3 || nodes % 2 === 0) throw new Error('--nodes must be odd and at least 3: the nemesis takes one node away at a time and a majority must stay up')
  const etcdRuns = positiveInt('etcd', values.etcd, 0)
  const kvRuns = positiveInt('kv', values.kv, 0)
  if (values.network !== undefined && values.network !== 'netns' && values.network !== 'loopback') throw new Error(`--network must be netns or loopback, got ${values.network}`)
  const clockSkew = Number(values['clock-skew'] ?? 0)
  if (!(clockSkew >= 0 && clockSkew < 0.5)) throw new Error(`--clock-skew must be a fraction from 0 to under 0.5, got ${values['clock-skew']}`)
  if (values.report !== undefined) return await report(values.report, await readRuns(values.report, 'run'), await readRuns(values.report, 'etcd'), await readRuns(values.report, 'kv'), durationS, nodes)
  const canNetns = await netnsAvailable()
  if (values.network === 'netns' && !canNetns) throw new Error('--network netns needs root and iproute2 (ip netns)')
  const network: Network = values.network ?? (canNetns ? 'netns' : 'loopback')
  const out = values.out ?? join('bench', 'out', `faults-${new Date().toISOString().replace(/[:.]/g, '-')}`)
  await mkdir(out, { recursive: true })
  const skewFlag = clockSkew > 0 ? ` --clock-skew ${clockSkew}` : ''
  const rerun = (s: number): string => `npm run bench -- faults --runs 1 --seed ${s} --duration ${durationS} --nodes ${nodes} --network ${network}${skewFlag}`
  process.stderr.write(`faults: network ${network}${network === 'netns' ? ' (each node in a network namespace: partitions drop packets, in every row)' : ' (raftmesh partitions by its transport\'s fault layer; the etcd and KV rows skip them)'}\n`)

  const results: RunResult[] = []
  for (let k = 0; k < runs; k++) {
    const s = seed + k
    const r = await runOnce({ seed: s, nodes, durationMs: durationS * 1000, outDir: out, keep: values.keep, network, clockSkew }).catch((err: unknown): RunResult => ({
      seed: s, network, clockSkew, ok: false, violations: { harness: [`the cluster did not start: ${(err as Error).message}`] }, faults: [], failovers: [], ops: {}, eventsReportedLost: 0, wallMs: 0, latency: [], throughput: []
    }))
    results.push(r)
    await writeFile(join(out, `run-${s}.json`), JSON.stringify(r))
    const n = Object.values(r.violations).flat().length
    const fo = r.failovers.map(f => Math.round(f.ms)).join('/')
    process.stderr.write(`faults run ${k + 1}/${runs} seed ${s}: ${r.ok ? 'ok' : `FAILED, ${n} violations (${Object.keys(r.violations).join(', ')})`}; ${r.faults.length} faults (${r.faults.map(f => f.kind).join(' ')}); failover ${fo === '' ? '-' : fo} ms; ${r.ops.lockGrants ?? 0} grants, ${r.ops.acked ?? 0} acks, ${r.ops.taskRuns ?? 0} ticks, ${r.ops.eventsDelivered ?? 0} deliveries${clockSkew > 0 ? `; clocks ${(r.clockRates ?? []).map(x => `x${x}`).join('/')}` : ''}; ${(r.wallMs / 1000).toFixed(0)} s\n`)
    if (!r.ok) {
      for (const [checker, vs] of Object.entries(r.violations)) for (const v of vs.slice(0, 5)) process.stderr.write(`  ${checker}: ${v}\n`)
      process.stderr.write(`  history and logs kept in ${r.kept ?? out}\n  rerun: ${rerun(s)}\n`)
    }
  }

  const etcd: EtcdRunResult[] = []
  for (let k = 0; k < etcdRuns; k++) {
    const s = seed + k
    const r = await runEtcdOnce({ seed: s, durationMs: durationS * 1000, basePort: 25790, network })
    etcd.push(r)
    await writeFile(join(out, `etcd-${s}.json`), JSON.stringify(r, (_k, x: unknown) => typeof x === 'bigint' ? String(x) : x))
    process.stderr.write(`etcd lock run ${k + 1}/${etcdRuns} seed ${s}: ${r.ok ? 'ok' : `${r.violations.length} violations`}; ${r.faults.length} faults (${r.faults.map(f => f.kind).join(' ')})${r.partitionsSkipped > 0 ? `, ${r.partitionsSkipped} partitions skipped` : ''}; waited ${r.leaderWaitsMs.join('/')} ms for a leader before each; ${r.grants} grants; ${(r.wallMs / 1000).toFixed(0)} s\n`)
    for (const v of r.violations.slice(0, 3)) process.stderr.write(`  locks: ${v}\n`)
  }
  const kv: KvRunResult[] = []
  for (let k = 0; k < kvRuns; k++) {
    const s = seed + k
    const r = await runKvOnce({ seed: s, durationMs: durationS * 1000, network })
    kv.push(r)
    await writeFile(join(out, `kv-${s}.json`), JSON.stringify(r))
    process.stderr.write(`raft kv run ${k + 1}/${kvRuns} seed ${s}: ${r.ok ? 'linearizable' : r.undecided ? 'undecided (search budget)' : 'NOT LINEARIZABLE'}; ${r.faults.length} faults (${r.faults.map(f => f.kind).join(' ')})${r.partitionsSkipped > 0 ? `, ${r.partitionsSkipped} partitions skipped` : ''}; ${r.ops} operations, ${r.unknown} of unknown outcome; ${(r.wallMs / 1000).toFixed(0)} s\n`)
    if (r.explanation !== null) process.stderr.write(`  kv: ${r.explanation}\n  rerun: npm run bench -- faults --runs 1 --kv 1 --seed ${s} --duration ${durationS} --network ${network}\n`)
  }
  return await report(out, results, etcd, kv, durationS, nodes)
}

/** The JSONs a batch left in `dir` (run-<seed>.json, etcd-<seed>.json), by seed. */
async function readRuns<T extends { seed: number }> (dir: string, kind: 'run' | 'etcd' | 'kv'): Promise<T[]> {
  const names = (await readdir(dir)).filter(n => new RegExp(`^${kind}-\\d+\\.json$`).test(n))
  if (kind === 'run' && names.length === 0) throw new Error(`no run-<seed>.json in ${dir}`)
  const runs = await Promise.all(names.map(async n => JSON.parse(await readFile(join(dir, n), 'utf8')) as T))
  return runs.sort((a, b) => a.seed - b.seed)
}

/** The summary and the plots of a batch's runs, written to `out`. */
async function report (out: string, results: readonly RunResult[], etcd: readonly EtcdRunResult[], kv: readonly KvRunResult[], durationS: number, nodes: number): Promise<FaultsResult> {
  const runs = results.length
  const seed = results[0].seed
  // Runs from before the option were all on loopback.
  const networks = [...new Set([...results, ...etcd, ...kv].map(r => r.network ?? 'loopback'))]
  if (networks.length > 1) throw new Error(`the runs in ${out} mix networks (${networks.join(', ')}): report them apart`)
  const network = networks[0]
  const skews = [...new Set(results.map(r => r.clockSkew ?? 0))]
  if (skews.length > 1) throw new Error(`the runs in ${out} mix clock skews (${skews.join(', ')}): report them apart`)
  const clockSkew = skews[0]
  const partitions = (rs: ReadonlyArray<{ faults: ReadonlyArray<{ kind: string }> }>): number => rs.reduce((n, r) => n + r.faults.filter(f => f.kind === 'partition').length, 0)
  const skipped = (rs: ReadonlyArray<{ partitionsSkipped?: number }>): number => rs.reduce((n, r) => n + (r.partitionsSkipped ?? 0), 0)
  const shown = results.find(r => !r.ok) ?? results[results.length - 1]
  const plots: Array<[string, string]> = [
    [`latency-seed-${shown.seed}.svg`, await renderSvg(latencySpec(shown))],
    [`throughput-seed-${shown.seed}.svg`, await renderSvg(throughputSpec(shown))],
    ['failover.svg', await renderSvg(failoverSpec(results))]
  ]
  for (const [name, svg] of plots) await writeFile(join(out, name), svg)

  const failover = new Latency()
  for (const r of results) for (const f of r.failovers) failover.record(f.ms)
  const rejoinMs = {} as FaultsResult['summary']['rejoinMs']
  for (const k of ['mesh', 'gossip', 'joined'] as const) {
    const l = new Latency()
    let missing = 0
    for (const r of results) for (const j of r.rejoins ?? []) {
      const ms = j[`${k}Ms`]
      if (ms === null) missing++
      else l.record(ms)
    }
    rejoinMs[k] = { ...l.summary(), missing }
  }
  const faults: Record<string, number> = {}
  for (const f of results.flatMap(r => r.faults)) faults[f.kind] = (faults[f.kind] ?? 0) + 1
  const ops: Record<string, number> = {}
  for (const r of results) for (const [k, v] of Object.entries(r.ops)) ops[k] = (ops[k] ?? 0) + v
  return {
    bench: 'faults',
    command: `npm run bench -- faults --runs ${runs} --seed ${seed} --duration ${durationS} --nodes ${nodes} --network ${network}${clockSkew > 0 ? ` --clock-skew ${clockSkew}` : ''}${etcd.length > 0 ? ` --etcd ${etcd.length}` : ''}${kv.length > 0 ? ` --kv ${kv.length}` : ''}`,
    options: { runs, seed, durationS, nodes, network, clockSkew },
    out,
    runs: results.map(({ latency: _l, throughput: _t, ...r }) => r),
    summary: {
      runs,
      failed: results.filter(r => !r.ok).length,
      violations: results.reduce((n, r) => n + Object.values(r.violations).flat().length, 0) + kv.filter(r => !r.ok && !r.undecided).length,
      faults,
      failoverMs: failover.summary(),
      rejoinMs,
      ops,
      eventsReportedLost: results.reduce((n, r) => n + r.eventsReportedLost, 0),
      network,
      lockRow: {
        raftmesh: { runs, failed: results.filter(r => (r.violations.locks ?? []).length > 0).length, violations: results.reduce((n, r) => n + (r.violations.locks ?? []).length, 0), grants: ops.lockGrants ?? 0, partitions: partitions(results), partitionsSkipped: 0 },
        etcd: { runs: etcd.length, failed: etcd.filter(r => !r.ok).length, violations: etcd.reduce((n, r) => n + r.violations.length, 0), grants: etcd.reduce((n, r) => n + r.grants, 0), partitions: partitions(etcd), partitionsSkipped: skipped(etcd) }
      },
      kvRow: { runs: kv.length, notLinearizable: kv.filter(r => !r.ok && !r.undecided).length, undecided: kv.filter(r => r.undecided).length, ops: kv.reduce((n, r) => n + r.ops, 0), unknown: kv.reduce((n, r) => n + r.unknown, 0), partitions: partitions(kv), partitionsSkipped: skipped(kv) }
    },
    kvRuns: kv.map(({ wallMs: _w, ...r }) => r),
    etcdRuns: etcd.map(r => ({ seed: r.seed, network: r.network ?? 'loopback', ok: r.ok, violations: r.violations.slice(0, 5), faults: r.faults, partitionsSkipped: r.partitionsSkipped ?? 0, leaderWaitsMs: r.leaderWaitsMs ?? [], grants: r.grants, unconfirmedGrants: r.unconfirmedGrants })),
    plots: plots.map(([name]) => join(out, name))
  }
}

export function faultsTable (r: FaultsResult): string {
  const s = r.summary
  const ms = (v: number): string => s.failoverMs.count === 0 ? '-' : v.toFixed(0)
  const parts = (x: { partitions: number, partitionsSkipped: number }): string => `, partitions ${x.partitions} applied${x.partitionsSkipped > 0 ? `, ${x.partitionsSkipped} skipped` : ''}`
  const rows = [
    ['network', s.network === 'netns' ? 'netns (each node in a network namespace: partitions drop packets)' : 'loopback (raftmesh partitions by its transport\'s fault layer; etcd and KV skip them)'],
    ['clocks', r.options.clockSkew > 0 ? `each raftmesh node up to ${r.options.clockSkew * 100}% fast or slow, one at each extreme` : 'real time'],
    ['runs', String(s.runs)],
    ['failed runs', String(s.failed)],
    ['violations', String(s.violations)],
    ['faults', Object.entries(s.faults).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['failover ms (p50 / p99 / max, n)', `${ms(s.failoverMs.p50Ms)} / ${ms(s.failoverMs.p99Ms)} / ${ms(s.failoverMs.maxMs)}, ${s.failoverMs.count}`],
    ...(['mesh', 'gossip', 'joined'] as const).map(k => {
      const j = s.rejoinMs[k]
      const v = j.count === 0 ? '-' : `${j.p50Ms.toFixed(0)} / ${j.p99Ms.toFixed(0)} / ${j.maxMs.toFixed(0)}, ${j.count}${j.missing > 0 ? ` (${j.missing} never)` : ''}`
      return [`restart → ${k === 'mesh' ? 'in every mesh' : k === 'gossip' ? 'in every gossipsub' : 'joined, caught up'} ms`, v]
    }),
    ...Object.entries(s.ops).map(([k, v]) => [k, String(v)]),
    ['events reported lost (gaps)', String(s.eventsReportedLost)],
    ...(['raftmesh', 'etcd'] as const).filter(k => s.lockRow[k].runs > 0).map(k => [`lock row, ${k}`, `${s.lockRow[k].failed} of ${s.lockRow[k].runs} runs with violations (${s.lockRow[k].violations} in all), ${s.lockRow[k].grants} grants${parts(s.lockRow[k])}`]),
    ...(s.kvRow.runs > 0 ? [['raft kv row', `${s.kvRow.notLinearizable} of ${s.kvRow.runs} runs not linearizable, ${s.kvRow.undecided} undecided; ${s.kvRow.ops} operations, ${s.kvRow.unknown} of unknown outcome${parts(s.kvRow)}`]] : []),
    ['plots', r.plots.join(' ')]
  ]
  const w = Math.max(...rows.map(x => x[0].length))
  return `faults: ${r.command}\n` + rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n')
}
