/**
 * `npm start`: the local multi-node simulation. Spawns N kv-node processes
 * on 127.0.0.1, waits for a leader, runs a read/write workload, SIGKILLs the
 * leader and shows the failover, restarts it and shows it catch up, and ends
 * with a summary.
 *
 *   npm start -- [--nodes 3] [--duration 20]
 */
import logUpdate from 'log-update'
import { parseArgs } from 'node:util'
import { LocalKvCluster, type LocalNode } from '../testkit/local-cluster.js'

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '3' }, duration: { type: 'string', default: '20' } } })
const nodeCount = Number(values.nodes)
const duration = Number(values.duration)
if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 9) { console.error('--nodes must be an integer from 1 to 9'); process.exit(2) }
if (!Number.isFinite(duration) || duration < 6) { console.error('--duration must be at least 6 (seconds)'); process.exit(2) }

const live = process.stdout.isTTY === true
const events: string[] = []
const t0 = Date.now()
const stamp = (): string => `${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`
const note = (msg: string): void => {
  events.push(`${stamp()}  ${msg}`)
  if (!live) console.log(`${stamp()}  ${msg}`)
}

const stats = { ok: 0, errors: 0, reads: 0, writes: 0 }
let cluster: LocalKvCluster | null = null

async function table (c: LocalKvCluster): Promise<string> {
  const rows = await Promise.all(c.nodes.map(async (n: LocalNode) => {
    const s = await c.status(n)
    if (s === null) return `${n.id.padEnd(4)} ${(n.proc === null ? 'down' : 'no answer').padEnd(10)}`
    const leaderView = s.members?.find((m: any) => m.id === n.id)
    const lag = s.role === 'leader' ? 0 : Math.max(0, (leaderCommit ?? s.commitIndex) - s.appliedIndex)
    return `${n.id.padEnd(4)} ${String(s.role).padEnd(10)} ${String(s.term).padStart(5)} ${String(s.commitIndex).padStart(8)} ${String(s.appliedIndex).padStart(8)} ${String(lag).padStart(6)}  ${leaderView?.http ?? n.http}`
  }))
  return ['node role        term   commit  applied    lag  http', ...rows].join('\n')
}

let leaderCommit: number | null = null
async function refresh (c: LocalKvCluster): Promise<void> {
  for (const n of c.nodes) {
    const s = await c.status(n)
    if (s?.role === 'leader') leaderCommit = s.commitIndex
  }
  const body = `${await table(c)}\n\nops ${stats.ok} ok (${stats.writes} writes, ${stats.reads} reads), ${stats.errors} errors\n\n${events.slice(-12).join('\n')}`
  if (live) logUpdate(body)
}

async function workload (c: LocalKvCluster, until: () => boolean): Promise<void> {
  let i = 0
  while (!until()) {
    const key = `k${i % 20}`
    try {
      const write = i % 3 !== 2
      const r = write ? await c.client.send('PUT', `/kv/${key}`, `value-${i}`, { timeoutMs: 2000 }) : await c.client.send('GET', `/kv/${key}`, undefined, { timeoutMs: 2000 })
      if (r.status === 200 || r.status === 404) {
        stats.ok++
        if (write) stats.writes++
        else stats.reads++
      } else {
        stats.errors++
      }
    } catch {
      stats.errors++
    }
    i++
  }
}

async function putSucceeds (c: LocalKvCluster, key: string): Promise<void> {
  for (;;) {
    try {
      const r = await c.client.send('PUT', `/kv/${key}`, 'probe', { attempts: 1, timeoutMs: 300 })
      if (r.status === 200) return
    } catch {}
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

async function main (): Promise<void> {
  console.log(`raftmesh local cluster: ${nodeCount} kv-node processes on 127.0.0.1 for ${duration} s`)
  cluster = await LocalKvCluster.start({ nodes: nodeCount })
  const c = cluster
  note(`${nodeCount} processes started (data in ${c.dir})`)
  const leader = await c.waitForLeader()
  note(`leader elected: ${leader.id}`)
  let done = false
  const load = workload(c, () => done)
  const ticker = setInterval(() => { void refresh(c) }, live ? 250 : 2000)
  const third = (duration * 1000) / 3
  await new Promise(resolve => setTimeout(resolve, third))

  let failoverMs: number | null = null
  let catchUpMs: number | null = null
  if (nodeCount >= 3) {
    const victim = await c.waitForLeader()
    note(`SIGKILL leader ${victim.id}`)
    const killedAt = performance.now()
    await c.kill(victim)
    await putSucceeds(c, 'failover')
    failoverMs = Math.round(performance.now() - killedAt)
    const next = await c.waitForLeader()
    note(`new leader ${next.id}; first write accepted ${failoverMs} ms after the kill`)
    await new Promise(resolve => setTimeout(resolve, third / 2))
    note(`restarting ${victim.id} from its data directory`)
    const restartAt = performance.now()
    await c.launch(victim)
    for (;;) {
      const [mine, theirs] = [await c.status(victim), await c.status(await c.waitForLeader())]
      if (mine !== null && theirs !== null && mine.appliedIndex >= theirs.commitIndex) break
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    catchUpMs = Math.round(performance.now() - restartAt)
    note(`${victim.id} caught up with the leader ${catchUpMs} ms after its restart (process startup included)`)
  }
  await new Promise(resolve => setTimeout(resolve, Math.max(0, t0 + duration * 1000 - Date.now())))
  done = true
  await load
  clearInterval(ticker)
  await refresh(c)
  if (live) logUpdate.done()
  else console.log(await table(c))
  console.log('\nsummary')
  console.log(`  operations   ${stats.ok} ok (${stats.writes} writes, ${stats.reads} linearizable reads), ${stats.errors} errors`)
  console.log(`  throughput   ${Math.round(stats.ok / duration)} ops/s from one sequential client`)
  if (failoverMs !== null) console.log(`  failover     ${failoverMs} ms from leader SIGKILL to the next accepted write`)
  if (catchUpMs !== null) console.log(`  catch-up     ${catchUpMs} ms from restarting the process (startup included) to it applying everything committed`)
  await c.stop()
}

const cleanup = (): void => { void cluster?.stop().finally(() => process.exit(130)) }
process.on('SIGINT', cleanup)
process.on('SIGTERM', cleanup)
main().catch(async err => {
  console.error(`npm start failed: ${(err as Error).message}`)
  await cluster?.stop()
  process.exit(1)
})
