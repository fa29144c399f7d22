/**
 * The lock row of the fault runs, against etcd 3.4: a 3-member etcd
 * cluster and three client processes (bench/procs/etcd-lock-client.ts, one
 * per member, as each raftmesh process embeds one node) looping acquire →
 * hold → release on one key with the etcd3 client's Lock, under the same
 * seeded plan of faults, and the same lock checker.
 *
 * A fault hits a member and its client together, as it would hit a machine
 * running both: SIGKILL (then both restart), SIGSTOP (then both resume),
 * and on `network: 'netns'` a partition: member i and its client run in the
 * lab's namespace i (testkit/netns.ts), the pair is cut off from the other
 * two by the network, and the client of the minority side sees what a real
 * one sees there (requests that hang, a lease it cannot keep alive). This
 * process reaches every member by the lab's client links, to find the
 * leader. On loopback partitions are skipped: etcd has no fault layer in
 * its transport, and this benchmark does not touch the host's firewall.
 * etcd's WAL is not torn (its format is not ours: a kill-torn is a plain
 * kill here).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Prng } from '../../sim/prng.js'
import { checkLockHistory } from '../../testkit/checks/lock-history.js'
import { machineNow, type HistoryEntry, type NodeEvent } from '../../testkit/cluster-processes.js'
import { NetnsLab } from '../../testkit/netns.js'
import { LOOPBACK, placedCommand } from '../../testkit/placement.js'
import { clientUrl, EtcdMembers } from '../etcd-cluster.js'
import { planFaults, type FaultWindow } from './nemesis.js'

const entry = join(dirname(fileURLToPath(import.meta.url)), '..', 'procs', 'etcd-lock-client.ts')
const KEY = 'faults-lock'
const TTL_S = 2

export interface EtcdRunResult {
  readonly seed: number
  readonly network: 'loopback' | 'netns'
  readonly ok: boolean
  readonly violations: string[]
  /** The faults applied; on loopback the plan's partitions are not among them (see `partitionsSkipped`). */
  readonly faults: FaultWindow[]
  readonly partitionsSkipped: number
  /** Before each fault, how long the harness waited for a member to report itself leader. */
  readonly leaderWaitsMs: number[]
  readonly grants: number
  /** Grants whose fence could not be read back (left out of the check). */
  readonly unconfirmedGrants: number
  readonly wallMs: number
}

interface Client { proc: ChildProcess, pending: Map<number, (m: { ok: boolean, error?: string }) => void> }

export async function runEtcdOnce (o: { seed: number, durationMs: number, basePort: number, network: 'loopback' | 'netns' }): Promise<EtcdRunResult> {
  const launched = machineNow()
  const lab = o.network === 'netns' ? await NetnsLab.create({ hosts: 3, clientLinks: true }) : null
  const placement = (i: number): ReturnType<NetnsLab['placement']> => lab?.placement(i) ?? LOOPBACK
  let etcd: EtcdMembers
  try {
    etcd = await EtcdMembers.start(o.basePort, placement)
  } catch (err) {
    await lab?.destroy()
    throw err
  }
  const history: HistoryEntry[] = []
  const record = (node: number, e: object): void => { history.push({ ...e, node } as HistoryEntry) }
  const clients: Array<Client | null> = [null, null, null]
  let nextId = 0
  const request = async (i: number, body: object): Promise<void> => {
    const c = clients[i]
    if (c === null) throw new Error(`etcd client ${i + 1} is down`)
    const id = ++nextId
    await new Promise<void>((resolve, reject) => {
      c.pending.set(id, m => { if (m.ok) resolve(); else reject(new Error(m.error)) })
      c.proc.send({ ...body, id })
    })
  }
  const startClient = async (i: number): Promise<void> => {
    const [cmd, argv] = placedCommand(placement(i), process.execPath, ['--import', 'tsx', entry, JSON.stringify({ endpoint: clientUrl(etcd.members[i]), ttlSeconds: TTL_S })])
    const proc = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'ignore', 'ipc'], serialization: 'advanced' })
    const c: Client = { proc, pending: new Map() }
    clients[i] = c
    record(i, { type: 'started', pid: proc.pid ?? -1, at: machineNow() })
    proc.on('message', (m: { id?: number, ok?: boolean, error?: string, type?: string, event?: NodeEvent }) => {
      if (m.type === 'event' && m.event !== undefined) record(i, m.event)
      if (m.id === undefined) return
      c.pending.get(m.id)?.({ ok: m.ok === true, error: m.error })
      c.pending.delete(m.id)
    })
    proc.once('exit', (code, signal) => {
      record(i, { type: 'exited', code, signal, at: machineNow() })
      for (const w of c.pending.values()) w({ ok: false, error: 'exited' })
    })
    await new Promise<void>((resolve, reject) => {
      proc.once('message', () => { resolve() })
      proc.once('exit', code => { reject(new Error(`etcd client ${i + 1} exited with ${String(code)} before it was ready`)) })
    })
    await request(i, { type: 'hold', key: KEY, holdMs: 50, gapMs: 20, timeoutMs: 10_000 })
  }
  const killClient = async (i: number): Promise<void> => {
    const c = clients[i]
    if (c === null) return
    clients[i] = null
    const gone = new Promise(resolve => c.proc.once('exit', resolve))
    record(i, { type: 'killed', signal: 'SIGKILL', at: machineNow() })
    c.proc.kill('SIGKILL')
    await gone
  }

  const windows: FaultWindow[] = []
  let violations: string[] = []
  let unconfirmedGrants = 0
  let partitionsSkipped = 0
  const leaderWaitsMs: number[] = []
  try {
    for (let i = 0; i < 3; i++) await startClient(i)
    await sleep(2000)
    const rng = new Prng(o.seed ^ 0x5eed)
    for (const f of planFaults(o.seed, { durationMs: o.durationMs, sessionTtlMs: TTL_S * 1000 })) {
      if (f.kind === 'partition' && lab === null) {
        partitionsSkipped++
        await sleep(f.holdMs + f.gapMs)
        continue
      }
      // As the raftmesh row's nemesis does (ClusterProcesses.leader(30_000)): wait for a leader, don't demand one.
      const asked = machineNow()
      const leader = etcd.members.indexOf(await etcd.waitForLeader(30_000))
      leaderWaitsMs.push(Math.round(machineNow() - asked))
      const node = f.victim === 'leader' ? leader : rng.pick([0, 1, 2].filter(i => i !== leader))
      const from = machineNow()
      if (f.kind === 'partition' && lab !== null) {
        const others = [0, 1, 2].filter(i => i !== node)
        await lab.partition([others, [node]])
        const at = machineNow()
        for (const i of [0, 1, 2]) record(i, { type: 'partitioned', from: i === node ? others : [node], at })
        await sleep(f.holdMs)
        await lab.heal()
        for (const i of [0, 1, 2]) record(i, { type: 'healed', at: machineNow() })
      } else if (f.kind === 'pause') {
        record(node, { type: 'paused', at: machineNow() })
        etcd.signal(etcd.members[node], 'SIGSTOP')
        clients[node]?.proc.kill('SIGSTOP')
        await sleep(f.holdMs)
        clients[node]?.proc.kill('SIGCONT')
        etcd.signal(etcd.members[node], 'SIGCONT')
        record(node, { type: 'resumed', at: machineNow() })
      } else {
        await Promise.all([killClient(node), etcd.kill(etcd.members[node])])
        await sleep(f.holdMs)
        await etcd.restart(etcd.members[node])
        await startClient(node)
      }
      windows.push({ kind: f.kind === 'kill-torn' ? 'kill' : f.kind, node, wasLeader: node === leader, from: from - launched, to: machineNow() - launched })
      await sleep(f.gapMs)
    }
    await sleep(TTL_S * 1000 + 3000)
    await Promise.all([0, 1, 2].map(async i => { await request(i, { type: 'stop-holding' }) }))
    await sleep(500)
    // A grant whose key, read back at once, no longer carried the client's lease (or could not be read, a member
    // being down) has no known fence: it is counted, and left out of the checked history.
    const unconfirmed = new Set(history.filter(e => e.type === 'granted' && !e.valid).map(e => (e as { owner: string }).owner))
    unconfirmedGrants = unconfirmed.size
    const confirmed = history.filter(e => !((e.type === 'granted' || e.type === 'released') && unconfirmed.has(e.owner)))
    violations = checkLockHistory(confirmed, { lock: KEY, sessionTtlMs: TTL_S * 1000, regrantSlackMs: 10_000, minGrants: 10 })
  } catch (err) {
    violations = [`the run could not finish: ${(err as Error).message}`]
  } finally {
    try {
      for (let i = 0; i < 3; i++) await killClient(i)
      await etcd.stop()
    } finally {
      await lab?.destroy()
    }
  }
  return { seed: o.seed, network: o.network, ok: violations.length === 0, violations, faults: windows, partitionsSkipped, leaderWaitsMs, grants: history.filter(e => e.type === 'granted').length, unconfirmedGrants, wallMs: machineNow() - launched }
}
