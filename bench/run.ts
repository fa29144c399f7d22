/**
 * `npm run bench -- <name> [...] [--flag [value]]`: runs benchmarks by
 * name, printing each result as JSON on stdout and a short table on
 * stderr. Flags go to every named benchmark (`queues` reads `--quick`,
 * `--runs N`; `cpu` reads those and `--baseline <rev>`; `faults` reads
 * `--runs`, `--seed`, `--duration`, `--nodes`, `--out`; `fuzz` reads
 * `--frames`, `--seed`, `--target`, `--batch`; `cache` and `events` read
 * `--quick`, `--sizes`, `--systems`, `--network`; `idle` reads `--runs`,
 * `--seconds`).
 */
import { fanoutTable, runCacheBench, runEventsBench } from './cache.js'
import { coreTable, runCoreBench } from './core.js'
import { cpuTable, runCpuBench } from './cpu.js'
import { faultsTable, runFaultsBench } from './faults.js'
import { idleTable, runIdleBench } from './idle.js'
import { fuzzTable, runFuzzBench } from './fuzz.js'
import { gossipTable, runGossipBench } from './gossip.js'
import { kvTable, runKvBench } from './kv.js'
import { pauseTable, runPauseBench } from './leader-pause.js'
import { queuesTable, runQueuesBench } from './queues.js'
import { locksTable, runLocksBench } from './locks.js'
import { rpcTable, runRpcBench } from './rpc.js'
import { runTransportBench, transportTable } from './transport.js'
import { runWalBench, walTable } from './wal.js'

const benches: Record<string, (flags: string[]) => Promise<{ json: unknown, table: string }>> = {
  wal: async () => { const r = await runWalBench(); return { json: r, table: walTable(r) } },
  core: async () => { const r = await runCoreBench(); return { json: r, table: coreTable(r) } },
  kv: async () => { const r = await runKvBench(); return { json: r, table: kvTable(r) } },
  locks: async () => { const r = await runLocksBench(); return { json: r, table: locksTable(r) } },
  transport: async () => { const r = await runTransportBench(); return { json: r, table: transportTable(r) } },
  gossip: async () => { const r = await runGossipBench(); return { json: r, table: gossipTable(r) } },
  rpc: async () => { const r = await runRpcBench(); return { json: r, table: rpcTable(r) } },
  pause: async () => { const r = await runPauseBench(); return { json: r, table: pauseTable(r) } },
  cache: async flags => { const r = await runCacheBench(flags); return { json: r, table: fanoutTable(r) } },
  events: async flags => { const r = await runEventsBench(flags); return { json: r, table: fanoutTable(r) } },
  queues: async flags => { const r = await runQueuesBench(flags); return { json: r, table: queuesTable(r) } },
  cpu: async flags => { const r = await runCpuBench(flags); return { json: r, table: cpuTable(r) } },
  faults: async flags => { const r = await runFaultsBench(flags); return { json: r, table: faultsTable(r) } },
  fuzz: async flags => { const r = await runFuzzBench(flags); return { json: r, table: fuzzTable(r) } },
  idle: async flags => { const r = await runIdleBench(flags); return { json: r, table: idleTable(r) } }
}

const names: string[] = []
const flags: string[] = []
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length && i < 100; i++) {
  if (!argv[i].startsWith('--')) names.push(argv[i])
  else {
    flags.push(argv[i])
    // A flag's value (`--runs 3`, `--baseline main`) is not a benchmark name.
    const next = argv[i + 1]
    if (next !== undefined && !next.startsWith('--') && !(next in benches)) flags.push(argv[++i])
  }
}
const USAGE = `usage: npm run bench -- <name>... [flags]
  ${Object.keys(benches).join(' ')}
flags (each benchmark reads its own):
  queues  --quick --runs N
  cpu     --quick --runs N --baseline <rev> --current-env NAME=value
  cache   --quick --sizes 3,5 --systems raftmesh,redis --network netns|loopback
  events  (as cache)
  faults  --runs N --seed S --duration SECONDS --nodes N --network netns|loopback --clock-skew F --out DIR --keep --report DIR --etcd N --kv N
  fuzz    --frames N --seed S --target NAME --batch B
  idle    --runs N --seconds S --profile
Each prints its JSON on stdout and a table on stderr; bench/RESULTS.md records the runs.`
if (flags.includes('--help')) {
  console.log(USAGE)
  process.exit(0)
}
const unknown = names.filter(n => !(n in benches))
if (names.length === 0 || unknown.length > 0) {
  console.error(`${USAGE}${unknown.length > 0 ? `\nunknown benchmark: ${unknown.join(', ')}` : ''}`)
  process.exit(2)
}
const machine = { date: new Date().toISOString(), node: process.version, cpus: (await import('node:os')).cpus().length }
for (const name of names) {
  const { json, table } = await benches[name](flags).catch((err: unknown) => {
    // A bad flag is the caller's mistake: its message, not a stack trace.
    if (err instanceof Error && (isParseArgsError(err) || err.message.startsWith('--'))) {
      console.error(`${name}: ${err.message}\n${USAGE}`)
      process.exit(2)
    }
    throw err
  })
  console.log(JSON.stringify({ machine, ...json as object }, null, 2))
  console.error(table)
}

function isParseArgsError (err: Error): boolean {
  return String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')
}
