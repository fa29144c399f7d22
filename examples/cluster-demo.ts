/**
 * `npm start`: the local multi-node simulation. Spawns N processes on
 * 127.0.0.1, each embedding one `Cluster` as a server would, and has every
 * one of them loop on the same lock (acquire, hold, release), so the lock
 * moves between nodes; enqueue HL7-like messages on one durable queue and
 * work them off with `process()`; and register the same scheduled task,
 * whose ticks the log hands to one node each. Meanwhile it SIGKILLs the Raft leader and restarts
 * it, SIGSTOPs the lock's holder past its session TTL, and SIGSTOPs the
 * leader, showing where the lock goes each time; it ends with a summary
 * that checks the recorded grants (fences only increase, no two holders at
 * once) and reports the failover times.
 *
 *   npm start -- [--nodes 3] [--duration 20]
 */
import logUpdate from 'log-update'
import { parseArgs } from 'node:util'
import { ClusterProcesses, machineNow, type HistoryEntry, type LockWorkload, type ProcessWorkload, type ProduceWorkload, type ScheduleWorkload } from '../testkit/cluster-processes.js'

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '3' }, duration: { type: 'string', default: '20' } } })
const nodeCount = Number(values.nodes)
const duration = Number(values.duration)
if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 7) { console.error('--nodes must be an integer from 1 to 7'); process.exit(2) }
if (!Number.isFinite(duration) || duration < 12) { console.error('--duration must be at least 12 (seconds)'); process.exit(2) }

const LOCK = 'nightly-report'
const TTL_MS = 3000
const workload: LockWorkload = { lock: LOCK, holdMs: 150, gapMs: 30, acquireTimeoutMs: 15_000 }
const QUEUE = 'hl7-in'
const TASK = 'purge-sessions'
const produce = (node: number, round: number): ProduceWorkload => ({ queue: QUEUE, idPrefix: `n${node + 1}.r${round}`, count: 100_000, inFlight: 2, maxAttempts: 5, gapMs: 40 })
const worker: ProcessWorkload = { queue: QUEUE, maxAttempts: 5, concurrency: 2, visibilityMs: 10_000, workMs: 15 }
const task: ScheduleWorkload = { task: TASK, everyMs: 1000, workMs: 50 }
const live = process.stdout.isTTY === true
const events: string[] = []
const t0 = machineNow()
const stamp = (at = machineNow()): string => `${((at - t0) / 1000).toFixed(1).padStart(5)}s`
const note = (msg: string, at?: number): void => {
  const line = `${stamp(at)}  ${msg}`
  events.push(line)
  if (!live) console.log(line)
}
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
let procs: ClusterProcesses | null = null

interface Hold { node: number, fence: bigint, from: number, to: number | null }
const holds: Hold[] = []
const grantsBy = new Map<number, number>()
const ticks: Array<{ node: number, scheduledAt: number, fence: bigint }> = []
let processed = 0
let enqueued = 0
const lastHold = (match: (h: Hold) => boolean): Hold | undefined => [...holds].reverse().find(match)

function track (e: HistoryEntry): void {
  if (e.type === 'granted') {
    holds.push({ node: e.node, fence: e.fence, from: e.at, to: null })
    grantsBy.set(e.node, (grantsBy.get(e.node) ?? 0) + 1)
  } else if (e.type === 'released' || e.type === 'lost') {
    const h = lastHold(x => x.node === e.node && x.fence === e.fence)
    if (h !== undefined && h.to === null) h.to = e.type === 'lost' ? (e.heldUntil ?? h.from) : e.at
    if (e.type === 'lost') note(`n${e.node + 1} lost ${LOCK} (fence ${e.fence}): ${e.reason}`, e.at)
  } else if (e.type === 'killed' || e.type === 'exited') {
    const h = lastHold(x => x.node === e.node && x.to === null)
    if (h !== undefined) h.to = e.at
  } else if (e.type === 'task-run') {
    ticks.push({ node: e.node, scheduledAt: e.scheduledAt, fence: e.fence })
    note(`n${e.node + 1} ran ${TASK} for the tick of ${new Date(e.scheduledAt).toISOString().slice(11, 19)} (fence ${e.fence})`, e.startedAt)
  } else if (e.type === 'job-acked') {
    processed++
  } else if (e.type === 'enqueued') {
    enqueued++
  } else if (e.type === 'panic') {
    note(`n${e.node + 1} panicked: ${e.reason}`, e.at)
  }
}

async function table (p: ClusterProcesses): Promise<string> {
  const rows = await Promise.all(p.nodes.map(async n => {
    if (n.proc === null) return `${n.id.padEnd(4)} down`
    if (n.paused) return `${n.id.padEnd(4)} paused (SIGSTOP)`
    const s = await p.status(n.index).catch(() => null)
    if (s === null) return `${n.id.padEnd(4)} no answer`
    const lock = s.locks.find(l => l.kind === 'lock' && l.name === LOCK)
    const holder = lock?.holder === null || lock === undefined ? '-' : `${lock.holder.node ?? '?'} #${lock.holder.fence}`
    const q = s.queues.find(x => x.name === QUEUE)
    const t = s.schedules.find(x => x.task === TASK)
    const lastTick = t?.lastRun == null ? '-' : `${t.lastRun.node} #${t.lastRun.fence}`
    return `${n.id.padEnd(4)} ${s.raft.role.padEnd(10)} ${String(s.raft.term).padStart(5)} ${String(s.raft.commitIndex).padStart(8)} ${String(s.raft.appliedIndex).padStart(8)}  ${holder.padEnd(12)} ${String(grantsBy.get(n.index) ?? 0).padStart(6)}  ${String(q?.depth ?? 0).padStart(5)} ${String(q?.inFlight ?? 0).padStart(6)}  ${lastTick.padEnd(10)} ${String(ticks.filter(x => x.node === n.index).length).padStart(5)}`
  }))
  return [`node role        term   commit  applied  ${LOCK.padEnd(12)} grants  depth flight  last tick  ticks`, ...rows].join('\n')
}

async function refresh (p: ClusterProcesses): Promise<void> {
  if (!live) return
  logUpdate(`${await table(p)}\n\n${holds.length} grants of ${LOCK}; ${QUEUE}: ${enqueued} enqueued, ${processed} processed; ${ticks.length} ticks of ${TASK}\n\n${events.slice(-12).join('\n')}`)
}

/** Time from `since` until any node other than `except` is granted the lock. */
async function nextGrant (p: ClusterProcesses, since: number, except: number): Promise<HistoryEntry> {
  const seen = p.history.find(e => e.type === 'granted' && e.at > since && e.node !== except)
  return seen ?? await p.waitFor(e => e.type === 'granted' && e.node !== except, 30_000, 'grant on another node')
}

async function main (): Promise<void> {
  console.log(`raftmesh local cluster: ${nodeCount} processes on 127.0.0.1, each embedding a Cluster, for ${duration} s`)
  const p = await ClusterProcesses.start({ nodes: nodeCount, sessionTtlMs: TTL_MS, panicAfterMs: TTL_MS / 2 })
  procs = p
  p.on('entry', track)
  note(`${nodeCount} processes joined (data in ${p.dir})`)
  note(`leader: n${await p.leader() + 1}`)
  let round = 0
  const startAll = async (i: number): Promise<void> => {
    await p.startWorkload(i, workload)
    await p.startProducer(i, produce(i, ++round))
    await p.startProcessor(i, worker)
    await p.startSchedule(i, task)
  }
  for (const n of p.nodes) await startAll(n.index)
  note(`every node loops: acquire ${LOCK}, hold ${workload.holdMs} ms, release; enqueues to ${QUEUE} and works it off; registers ${TASK} every ${task.everyMs} ms`)
  const ticker = setInterval(() => { void refresh(p) }, live ? 250 : 2000)
  const step = (duration * 1000) / 5
  const results: { failoverMs?: number, holderPauseMs?: number, leaderPauseMs?: number, rejoinMs?: number } = {}

  await sleep(step)
  if (nodeCount >= 3) {
    const victim = await p.leader()
    const heldByVictim = lastHold(h => h.to === null)?.node === victim
    const at = machineNow()
    note(`SIGKILL leader n${victim + 1}${heldByVictim ? `, which holds ${LOCK}` : ''}`)
    const elected = p.waitFor(x => x.type === 'leader' && x.leader !== null && x.leader !== p.nodes[victim].id, 30_000, 'a new leader')
    await p.kill(victim)
    const e = await elected
    results.failoverMs = Math.round(e.at - at)
    note(`new leader ${e.type === 'leader' ? e.leader ?? '' : ''} ${results.failoverMs} ms after the kill`, e.at)
    const g = await nextGrant(p, at, victim)
    note(`n${g.node + 1} got ${LOCK} ${Math.round(g.at - at)} ms after the kill${heldByVictim ? ` (the dead holder's session had to expire: TTL ${TTL_MS} ms)` : ''}`, g.at)
    const restartAt = machineNow()
    await p.restart(victim)
    results.rejoinMs = Math.round(machineNow() - restartAt)
    await startAll(victim)
    note(`n${victim + 1} restarted from its data directory and rejoined in ${results.rejoinMs} ms (process startup included)`)
  }

  await sleep(step)
  if (nodeCount >= 2) {
    const holder = lastHold(h => h.to === null)?.node ?? (holds.at(-1)?.node ?? 0)
    const at = machineNow()
    note(`SIGSTOP n${holder + 1}, the lock's holder, for ${(TTL_MS * 1.5 / 1000).toFixed(1)} s (session TTL ${TTL_MS / 1000} s)`)
    p.pause(holder)
    const g = await nextGrant(p, at, holder)
    results.holderPauseMs = Math.round(g.at - at)
    note(`n${g.node + 1} got ${LOCK} ${results.holderPauseMs} ms after its holder froze (its session expired)`)
    await sleep(Math.max(0, at + TTL_MS * 1.5 - machineNow()))
    p.resume(holder)
    note(`SIGCONT n${holder + 1}: it sees its lease is gone, opens a new session and queues again`)
  }

  await sleep(step)
  if (nodeCount >= 3) {
    const leader = await p.leader()
    const before = (await p.status(leader)).raft.term
    const at = machineNow()
    note(`SIGSTOP leader n${leader + 1}`)
    p.pause(leader)
    const e = await p.waitFor(x => x.type === 'leader' && x.leader !== null && x.leader !== p.nodes[leader].id && x.term > before, 30_000, 'a new leader')
    results.leaderPauseMs = Math.round(e.at - at)
    note(`new leader ${e.type === 'leader' ? e.leader ?? '' : ''} ${results.leaderPauseMs} ms after the leader froze`)
    await sleep(1500)
    p.resume(leader)
    note(`SIGCONT n${leader + 1}: it steps down and follows`)
  }

  await sleep(Math.max(0, t0 + duration * 1000 - machineNow()))
  for (const n of p.nodes) if (n.proc !== null) await p.stopWorkloads(n.index).catch(() => {})
  clearInterval(ticker)
  if (live) {
    await refresh(p)
    logUpdate.done()
  } else {
    console.log(await table(p))
  }
  const byGrant = [...holds].sort((a, b) => a.from - b.from)
  const fencesIncrease = byGrant.every((h, i) => i === 0 || h.fence > byGrant[i - 1].fence)
  const overlaps = byGrant.filter((h, i) => i > 0 && (byGrant[i - 1].to ?? Infinity) > h.from).length
  const tickTimes = ticks.map(x => x.scheduledAt)
  const ticksOnce = new Set(tickTimes).size === tickTimes.length
  const byTick = [...ticks].sort((a, b) => a.scheduledAt - b.scheduledAt)
  const tickFences = byTick.every((x, i) => i === 0 || x.fence > byTick[i - 1].fence)
  const lastSeen = p.nodes.find(n => n.proc !== null && !n.paused)
  const q = lastSeen === undefined ? null : (await p.status(lastSeen.index).catch(() => null))?.queues.find(x => x.name === QUEUE) ?? null
  console.log('\nsummary')
  console.log(`  lock grants  ${holds.length} of ${LOCK} (${[...grantsBy].sort((a, b) => a[0] - b[0]).map(([n, c]) => `n${n + 1}: ${c}`).join(', ')})`)
  console.log(`  safety       fences ${fencesIncrease ? 'strictly increase' : 'DO NOT increase'} in grant order; ${overlaps} overlapping holds`)
  console.log(`  queue        ${enqueued} enqueued to ${QUEUE}, ${processed} processed and acked; depth ${q?.depth ?? '?'} and ${q?.inFlight ?? '?'} in flight at the end`)
  console.log(`  scheduler    ${ticks.length} ticks of ${TASK} (${[0, 1, 2, 3, 4, 5, 6].slice(0, nodeCount).map(i => `n${i + 1}: ${ticks.filter(x => x.node === i).length}`).join(', ')}); each tick ${ticksOnce ? 'ran once' : 'RAN TWICE'}, fences ${tickFences ? 'increase' : 'DO NOT increase'}`)
  if (results.failoverMs !== undefined) console.log(`  failover     ${results.failoverMs} ms from leader SIGKILL to a new leader`)
  if (results.holderPauseMs !== undefined) console.log(`  frozen holder ${results.holderPauseMs} ms from SIGSTOP of the holder to a grant elsewhere (session TTL ${TTL_MS} ms)`)
  if (results.leaderPauseMs !== undefined) console.log(`  frozen leader ${results.leaderPauseMs} ms from SIGSTOP of the leader to a new leader`)
  if (results.rejoinMs !== undefined) console.log(`  rejoin       ${results.rejoinMs} ms from restarting the killed leader (startup included) to it holding a session again`)
  await p.stop()
  if (!fencesIncrease || overlaps > 0 || !ticksOnce || !tickFences) process.exit(1)
}

const cleanup = (): void => { void procs?.stop().finally(() => process.exit(130)) }
process.on('SIGINT', cleanup)
process.on('SIGTERM', cleanup)
main().catch(async err => {
  console.error(`npm start failed: ${(err as Error).message}`)
  await procs?.stop()
  process.exit(1)
})
