/**
 * The network-namespace lab (testkit/netns.ts) that gives process tests
 * real partitions: hosts reach each other, a partition silently drops
 * traffic across the cut, heal restores it, and destroy leaves nothing.
 * Then a ClusterProcesses on netns (each node in a namespace): the leader
 * cut off by the network keeps no lock, the majority keeps granting it, and
 * after the heal the cut node catches up.
 * Needs root and iproute2; skipped otherwise.
 */
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { readlinkSync } from 'node:fs'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { checkLockHistory } from '../testkit/checks/lock-history.js'
import { ClusterProcesses, machineNow } from '../testkit/cluster-processes.js'
import { NetnsLab, netnsAvailable } from '../testkit/netns.js'

const run = promisify(execFile)
const PORT = 7411

/** From host `from`, whether a TCP connection to `addr` opens within 1.5 s. */
async function reaches (lab: NetnsLab, from: number, addr: string): Promise<boolean> {
  const script = `const s = require('net').connect(${PORT}, '${addr}'); s.setTimeout(1500); s.on('connect', () => { process.stdout.write('open'); s.destroy() }); s.on('timeout', () => s.destroy()); s.on('error', () => {})`
  const [cmd, ...args] = lab.exec(from)
  const { stdout } = await run(cmd, [...args, process.execPath, '-e', script])
  return stdout === 'open'
}

/** From this machine, the same. */
async function reachesFromHere (addr: string): Promise<boolean> {
  return await new Promise(resolve => {
    const s = connect(PORT, addr)
    s.setTimeout(1500)
    s.on('connect', () => { s.destroy(); resolve(true) })
    s.on('timeout', () => { s.destroy(); resolve(false) })
    s.on('error', () => { resolve(false) })
  })
}

const skip = await netnsAvailable() ? false : 'needs root and iproute2 (ip netns) for network namespaces'

t.test('a partition cuts hosts off from each other and heal joins them again; client links reach every host throughout', { skip }, async t => {
  const lab = await NetnsLab.create({ hosts: 3, clientLinks: true })
  t.teardown(async () => { await lab.destroy() })
  const servers = lab.hosts.map((h, i) => {
    const [cmd, ...args] = lab.exec(i)
    return spawn(cmd, [...args, process.execPath, '-e', `require('net').createServer(s => s.end()).listen(${PORT}, '${h.addr}', () => process.stdout.write('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] })
  })
  t.teardown(() => { for (const s of servers) s.kill('SIGKILL') })
  await Promise.all(servers.map(async s => { await new Promise(resolve => s.stdout?.once('data', resolve)) }))
  const [a, b, c] = lab.hosts.map(h => h.addr)

  t.ok(await reaches(lab, 0, c), 'whole: n1 reaches n3')
  await lab.partition([[0, 1]])
  t.ok(await reaches(lab, 0, b), 'n1 and n2 are on one side')
  t.notOk(await reaches(lab, 0, c), 'n1 does not reach n3 across the cut')
  t.notOk(await reaches(lab, 2, a), 'nor n3 n1')
  t.ok(await reachesFromHere(c), 'this machine reaches n3 by its client link')
  t.ok(await reachesFromHere(a), 'and n1')
  await lab.heal()
  t.ok(await reaches(lab, 2, a), 'healed: n3 reaches n1 again')
  await t.rejects(lab.partition([[0], [0, 1]]), RangeError, 'a host in two groups')
})

t.test('destroy removes every namespace the lab made', { skip }, async t => {
  const lab = await NetnsLab.create({ hosts: 2 })
  const names = [...lab.hosts.map(h => h.ns)]
  const listed = async (): Promise<string> => (await run('ip', ['netns', 'list'])).stdout
  t.ok((await listed()).includes(names[0]), 'the hosts exist while the lab does')
  await lab.destroy()
  const after = await listed()
  t.notOk(names.some(n => after.includes(n)), 'and are gone after destroy')
})

t.test('on netns, the leader cut off by the network keeps no lock, the majority keeps granting it, and the cut node catches up after the heal', { skip }, async t => {
  const TTL = 1000
  const t0 = machineNow()
  const c = await ClusterProcesses.start({ nodes: 3, network: 'netns', sessionTtlMs: TTL, panicAfterMs: 500 })
  t.teardown(async () => { await c.stop() })
  t.equal(c.network, 'netns')
  // ip netns exec execs node: the PID the harness signals (SIGKILL, SIGSTOP) is node's, not a wrapper's.
  t.same(c.nodes.map(n => readlinkSync(`/proc/${n.proc?.pid ?? 0}/exe`)), c.nodes.map(() => process.execPath), 'each child PID is node itself')
  t.comment(`the cluster started in ${Math.round(machineNow() - t0)} ms`)
  for (let i = 0; i < 3; i++) await c.startWorkload(i, { lock: 'job', holdMs: 50, gapMs: 20, acquireTimeoutMs: 5000 })
  await c.waitFor(e => e.type === 'granted' && e.valid, 10_000, 'a first grant')
  const cut = await c.leader()
  const majority = [0, 1, 2].filter(i => i !== cut)
  const cutAt = machineNow()
  await c.partition(majority, [cut])
  // Nothing but the network tells the cut node: it must find out, lose its lease and panic (onPanic: report).
  await c.waitFor(e => e.type === 'panic' && e.node === cut, 5000, 'the cut-off leader to panic')
  // The cut leader's last lease runs out a TTL after the cut at most; a new leader is elected meanwhile.
  const settled = cutAt + TTL + 500
  const healAt = Math.max(machineNow(), settled) + 1500
  await sleep(healAt - machineNow())
  const within = c.history.filter(e => e.type === 'granted' && e.valid && e.at > settled && e.at < healAt)
  t.ok(within.filter(e => e.node !== cut).length >= 5, `the majority kept granting the lock (${within.length} grants in the 1.5 s before the heal)`)
  t.equal(within.filter(e => e.node === cut).length, 0, 'and the cut node got none')
  t.not((await c.status(majority[0])).raft.leader, c.nodes[cut].id, 'the majority follows a leader of its own')
  await c.heal()
  const target = (await c.status(majority[0])).raft.commitIndex
  const until = machineNow() + 8000
  let applied = 0
  while (machineNow() < until) {
    applied = (await c.status(cut)).raft.appliedIndex
    if (applied >= target) break
    await sleep(100)
  }
  t.ok(applied >= target, `after the heal the cut node applied the majority's log (index ${applied}, majority's commit ${target} at the heal)`)
  t.same(checkLockHistory(c.history, { lock: 'job', sessionTtlMs: TTL, regrantSlackMs: 5000, minGrants: 5 }), [], 'the lock history is correct')
})
