/**
 * `npm start`: the local multi-node simulation. Starts N example clinic
 * servers (examples/clinic-server/), one process each, sharing one
 * database; prints each node's URL and dashboard; runs a workload through
 * their HTTP API; injects faults on a schedule and, on a terminal, from the
 * keyboard; shows a live table of every node's /cluster/status; and ends
 * with a summary: failover times, operations and errors, and safety checks
 * on the shared database. Runs until Ctrl-C (or q), or for --duration
 * seconds, and leaves no process behind.
 *
 *   npm start -- [--nodes 3] [--duration 20]
 */
import logUpdate from 'log-update'
import { emitKeypressEvents } from 'node:readline'
import { parseArgs } from 'node:util'
import type { ClusterStatus } from '../lib/index.js'
import { PANIC_EXIT_CODE } from '../lib/index.js'
import { ClinicProcesses } from '../testkit/clinic-processes.js'
import { NetnsLab, netnsAvailable } from '../testkit/netns.js'
import { openClinicDb } from './clinic-server/database.js'
import { Faults } from './cluster-demo/faults.js'
import { createRunSchema, type RunSchema } from './cluster-demo/postgres-schema.js'
import { checkSafety } from './cluster-demo/safety.js'
import { QUEUE, statusTable, TASK } from './cluster-demo/status-table.js'
import { Workload } from './cluster-demo/workload.js'

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '3' }, duration: { type: 'string' } } })
const nodeCount = Number(values.nodes)
const duration = values.duration === undefined ? null : Number(values.duration)
if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 7) { console.error('--nodes must be an integer from 1 to 7'); process.exit(2) }
if (duration !== null && (!Number.isFinite(duration) || duration < 12)) { console.error('--duration must be at least 12 (seconds); without it the run goes on until Ctrl-C'); process.exit(2) }

const PURGE_EVERY_MS = 1000
const live = process.stdout.isTTY === true
const keys = process.stdin.isTTY === true
const KEY_HELP = 'keys: k kill leader  r restart down nodes  p pause leader  c resume  s partition  h heal  q quit'
const t0 = Date.now()
const events: string[] = []
const note = (msg: string): void => {
  const line = `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s  ${msg}`
  events.push(line)
  if (!live) console.log(line)
}
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
/**
 * The longest the fault in progress may take to finish once the run is over:
 * its own steps are bounded (30 s to make the cluster whole, 15 s for a new
 * leader, 60 s for a restarted server to be ready).
 */
const FAULT_FINISH_MS = 120_000
/** Resolves with `p`, or fails with `what` if it has not settled within `ms`. */
const within = async (p: Promise<unknown>, ms: number, what: string): Promise<void> => {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what} within ${ms / 1000} s`)) }, ms) })
  try {
    await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

let procs: ClinicProcesses | null = null
let lab: NetnsLab | null = null
let labGone: Promise<void> | null = null
/** One deletion of the namespaces, which every exit path waits for (a second call must not exit before the first ends). */
const destroyLab = async (): Promise<void> => { labGone ??= lab?.destroy() ?? Promise.resolve(); await labGone }
let quitRequested = false
let quit: () => void = () => {}
const quitting = new Promise<void>(resolve => { quit = () => { quitRequested = true; resolve() } })

/**
 * A kill, a follower frozen past the panic timeout, and a leader frozen
 * briefly, spread over `roundMs`. Each fault first makes the cluster whole
 * again (heals a partition, resumes paused nodes, restarts those that are
 * down: whatever the keyboard did too), so that one fault at a time can
 * cost the cluster a node but never its majority.
 */
async function scheduledFaults (faults: Faults, roundMs: number, stop: AbortSignal): Promise<void> {
  const wait = async (ms: number): Promise<boolean> => {
    let onAbort = (): void => {}
    await Promise.race([sleep(ms), new Promise<void>(resolve => { onAbort = resolve; stop.addEventListener('abort', onAbort, { once: true }) })])
    stop.removeEventListener('abort', onAbort)
    return !stop.aborted
  }
  const fault = async (fn: () => Promise<void>): Promise<void> => {
    await faults.serial(async () => {
      if (stop.aborted) return
      if (!await faults.whole(30_000)) { faults.note('the cluster is not whole after 30 s: this fault is skipped'); return }
      if (!stop.aborted) await fn()
    })
  }
  while (!stop.aborted) {
    const start = Date.now()
    const at = async (fraction: number): Promise<boolean> => await wait(Math.max(0, start + roundMs * fraction - Date.now()))
    if (!await at(0.2)) return
    await fault(async () => { await faults.killLeader() })
    await faults.serial(async () => { if (!stop.aborted) await faults.restartDown() })
    if (!await at(0.45)) return
    let frozen: number | null = null
    await fault(async () => { frozen = await faults.pauseFollower() })
    // Longer than the servers' panicAfterMs (2 s): on SIGCONT it panics at once and exits, and is restarted.
    if (frozen !== null && !await wait(3000)) return
    await faults.serial(async () => {
      faults.resumeAll()
      if (frozen !== null && await faults.exitWithin(frozen, 5000)) await faults.restartDown()
    })
    if (!await at(0.7)) return
    // Resumed soon after the new leader is seen, so that (unless the election took long) it was frozen for
    // less than panicAfterMs: it steps down and follows. Frozen longer, it panics on SIGCONT, as a node should.
    await fault(async () => { await faults.pauseLeader(200) })
    if (!faults.canPartition) continue
    if (!await at(0.85)) return
    let cut: number | null = null
    await fault(async () => { cut = await faults.partition() })
    // Cut off for longer than panicAfterMs: the old leader panics (it stops serving at once and exits once its
    // clean stop gives up or the network is back); healed, it is restarted.
    if (!await wait(3000)) return
    await faults.serial(async () => {
      await faults.heal()
      if (cut !== null && await faults.exitWithin(cut, 10_000)) await faults.restartDown()
    })
    if (!await at(1)) return
  }
}

function listenToKeys (faults: Faults): () => void {
  emitKeypressEvents(process.stdin)
  process.stdin.setRawMode(true)
  const onKey = (s: string | undefined, key: { ctrl?: boolean, name?: string } | undefined): void => {
    if (key?.ctrl === true && key.name === 'c') { quit(); return }
    const actions: Record<string, () => Promise<void> | void> = {
      k: async () => { await faults.killLeader() },
      r: async () => { await faults.restartDown() },
      p: async () => { await faults.pauseLeader() },
      c: () => { faults.resumeAll() },
      s: async () => { await faults.partition() },
      h: async () => { await faults.heal() },
      q: () => { quit() }
    }
    const action = actions[s ?? '']
    if (action !== undefined) void faults.serial(async () => { await action() })
  }
  process.stdin.on('keypress', onKey)
  process.stdin.resume()
  return () => {
    process.stdin.off('keypress', onKey)
    process.stdin.setRawMode(false)
    process.stdin.pause()
  }
}

/** Waits until some live node sees the HL7 queue empty, for at most `ms`. */
async function drained (faults: Faults, ms: number): Promise<ClusterStatus | null> {
  const end = Date.now() + ms
  let last: ClusterStatus | null = null
  while (Date.now() < end) {
    last = (await faults.statuses()).find(s => s !== null) ?? last
    const q = last?.queues.find(x => x.name === QUEUE)
    if (q !== undefined && q.depth === 0 && q.inFlight === 0) return last
    await sleep(250)
  }
  return last
}

async function main (): Promise<number> {
  console.log(`raftmesh local cluster: ${nodeCount} clinic servers (examples/clinic-server), each embedding a Cluster, ${duration === null ? 'until Ctrl-C' : `for ${duration} s`}`)
  const databaseUrl = process.env.DATABASE_URL ?? ''
  const schema: RunSchema | null = databaseUrl === '' ? null : await createRunSchema(databaseUrl, t0.toString(36))
  // Namespaces give real partitions; a PostgreSQL on this machine's loopback would be out of their reach.
  if (schema === null && await netnsAvailable()) lab = await NetnsLab.create({ hosts: nodeCount, hostLink: true })
  const nodesLab = lab
  const p = await ClinicProcesses.prepare({
    nodes: nodeCount,
    databaseUrl: schema?.url,
    purgeEveryMs: PURGE_EVERY_MS,
    placement: nodesLab === null ? undefined : i => nodesLab.placement(i)
  })
  procs = p
  await p.start()
  const where = 'file' in p.database ? `SQLite ${p.database.file}` : `PostgreSQL (DATABASE_URL, ${new URL(p.database.url).searchParams.get('options')?.replace('-c search_path=', 'schema ') ?? ''})`
  for (const n of p.nodes) console.log(`  ${n.id}  ${n.http}   dashboard ${n.http}/cluster/`)
  console.log(`  shared database: ${where}`)
  console.log(lab === null
    ? `  partitions: off (${schema === null ? 'network namespaces need root and iproute2' : 'the nodes would run in network namespaces, out of reach of a PostgreSQL on this machine'})`
    : `  partitions: real; each node runs in a network namespace of its own (${lab.hosts.map(h => h.ns).join(', ')})`)
  if (keys) console.log(`  ${KEY_HELP}`)
  note(`${nodeCount} servers ready`)
  p.on('exit', ({ node, code, signal }) => {
    const id = p.nodes[node].id
    if (code === PANIC_EXIT_CODE) note(`${id} panicked (it had not been part of a majority) and exited with code ${code}`)
    else if (signal !== 'SIGKILL' && signal !== 'SIGTERM' && code !== 0) note(`${id} exited (${signal ?? `code ${String(code)}`})`)
  })

  const faults = new Faults(p, note, lab)
  const workload = new Workload({ live: () => p.nodes.filter(n => n.ready && !n.paused).map(n => n.http) }, `R${t0.toString(36)}`)
  const workStart = Date.now()
  workload.start(3, 20)
  note('workload: patients created and read on other nodes, HL7 admissions posted, a setting written and read, searches')

  let statuses: Array<ClusterStatus | null> = []
  let refreshing = false
  const refresh = async (): Promise<void> => {
    if (refreshing) return
    refreshing = true
    statuses = await faults.statuses()
    refreshing = false
    const { ok, errors } = workload.total
    if (live) logUpdate(`${statusTable(p.nodes, statuses)}\n\n${ok} operations, ${errors} errors; ${workload.counts.accepted.size} HL7 messages accepted${keys ? `\n${KEY_HELP}` : ''}\n\n${events.slice(-12).join('\n')}`)
  }
  const ticker = live ? setInterval(() => { void refresh() }, 500) : undefined
  const unkey = keys ? listenToKeys(faults) : () => {}
  const stopFaults = new AbortController()
  const schedule = scheduledFaults(faults, duration === null ? 30_000 : duration * 1000, stopFaults.signal)
  await Promise.race([quitting, duration === null ? new Promise(() => {}) : sleep(duration * 1000)])

  stopFaults.abort()
  unkey()
  note('stopping: the fault in progress finishes first (Ctrl-C again to leave at once)')
  // A timed run must end: once (two files of the test suite at once) it waited here for good, cause unknown.
  await within(Promise.all([schedule, faults.serial(async () => {})]), FAULT_FINISH_MS, 'the fault in progress did not finish')
  await workload.stop()
  const workSeconds = (Date.now() - workStart) / 1000
  note('workload stopped; healing, resuming and restarting what is down, then waiting for the HL7 queue to drain')
  // A node that panicked during the last fault exits and must come back, or
  // a cluster left without a majority could never drain the queue.
  if (!await faults.whole(30_000)) note('not every node is ready after 30 s; waiting for the queue anyway')
  const end = await drained(faults, 30_000)
  clearInterval(ticker)
  await refresh()
  if (live) logUpdate.done()
  else console.log(statusTable(p.nodes, statuses))

  await p.stop({ keep: true })
  const db = await openClinicDb('file' in p.database ? { file: p.database.file } : { url: p.database.url })
  const safety = checkSafety({ accepted: workload.counts.accepted, attempts: await db.hl7Attempts(), patients: await db.allPatients(), purgeRuns: await db.taskRuns(TASK) })
  const patients = (await db.allPatients()).length
  await db.close()

  const c = workload.counts
  const { ok, errors } = workload.total
  const q = end?.queues.find(x => x.name === QUEUE)
  const kinds = (['create', 'read', 'hl7', 'setting', 'search'] as const).map(k => `${k} ${c.ok[k]}/${c.errors[k]}`).join(', ')
  console.log('\nsummary')
  console.log(`  nodes        ${nodeCount} clinic servers on ${where}`)
  console.log(`  operations   ${ok} ok, ${errors} errors in ${workSeconds.toFixed(0)} s (${(ok / workSeconds).toFixed(0)}/s; ok/errors: ${kinds})`)
  if (c.causes.size > 0) console.log(`  errors       ${[...c.causes].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(', ')}`)
  const label = { SIGKILL: 'failover    ', SIGSTOP: 'frozen leader', partition: 'cut leader  ' }
  for (const f of faults.failovers) {
    console.log(`  ${label[f.fault]} ${f.ms === null ? 'NO new leader within 15 s' : `${f.ms} ms`} from leader ${f.fault} (${f.victim}) to a new leader`)
  }
  if (faults.failovers.length === 0) console.log('  failover     none measured (a failover needs at least 3 nodes and a leader kill)')
  console.log(`  hl7          ${c.accepted.size} accepted, ${safety.messages} imported, ${safety.merged} merged into a known patient; ${safety.attempts} attempts (${safety.retries} retries or duplicates, ${safety.stale} refused as stale); queue at the end: depth ${q?.depth ?? '?'}, in flight ${q?.inFlight ?? '?'}, dead letters ${q?.deadLetters ?? '?'}`)
  console.log(`  purge        ${safety.purgeRuns} ticks of ${TASK} recorded`)
  console.log(`  patients     ${patients} in the shared database`)
  console.log(`  safety       ${safety.violations.length === 0 ? 'each accepted HL7 message imported exactly once, accepted fences increase per message, no identifier on two patients, each purge tick once with increasing fences' : `${safety.violations.length} VIOLATIONS`}`)
  for (const v of safety.violations.slice(0, 20)) console.log(`    ${v}`)
  if (safety.violations.length > 0) {
    console.log(`  data kept in ${p.dir}${schema === null ? '' : ' and the schema above'}`)
    await destroyLab()
    return 1
  }
  await p.stop()
  await destroyLab()
  await schema?.drop()
  return 0
}

// Whatever way this process ends, no server outlives it. (Namespaces a hard exit leaves are removed by the next run.)
process.on('exit', () => { procs?.killAllNow() })
/** Leaves at once: the servers are killed by PID (the 'exit' handler), the namespaces deleted, within 3 s. */
const leaveNow = (code: number): void => {
  procs?.killAllNow()
  setTimeout(() => { process.exit(code) }, 3000)
  void destroyLab().finally(() => { process.exit(code) })
}
const interrupted = (): void => {
  // The first Ctrl-C (or q) ends the run with its summary; another one leaves at once.
  if (quitRequested) leaveNow(130)
  else quit()
}
process.on('SIGINT', interrupted)
process.on('SIGTERM', interrupted)
// The terminal went away: leave now.
process.on('SIGHUP', () => { leaveNow(129) })
main().then(code => { process.exit(code) }, async (err: unknown) => {
  if (live) logUpdate.done()
  console.error(`npm start failed: ${(err as Error).message}`)
  await procs?.stop({ graceMs: 1000 }).catch(() => {})
  await destroyLab()
  process.exit(1)
})
