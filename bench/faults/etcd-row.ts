/**
 * The lock row of the fault runs, against etcd 3.4: a 3-member etcd
 * cluster and three client processes (bench/procs/etcd-lock-client.ts, one
 * per member, as each raftmesh process embeds one node) looping acquire →
 * hold → release on one key with the etcd3 client's Lock, under the same
 * seeded plan of faults, and the same lock checker.
 *
 * A fault hits a member and its client together, as it would hit a machine
 * running both: SIGKILL (then both restart), SIGSTOP (then both resume).
 * etcd's WAL is not torn (its format is not ours: a kill-torn is a plain
 * kill here), and partitions are skipped: etcd has no fault layer in its
 * transport, and this benchmark does not touch the host's firewall.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Prng } from '../../sim/prng.js'
import { checkLockHistory } from '../../testkit/checks/lock-history.js'
import { machineNow, type HistoryEntry, type NodeEvent } from '../../testkit/cluster-processes.js'
import { EtcdMembers } from '../etcd-cluster.js'
import { planFaults, type FaultWindow } from './nemesis.js'

const entry = join(dirname(fileURLToPath(import.meta.url)), '..', 'procs', 'etcd-lock-client.ts')
const KEY = 'faults-lock'
const TTL_S = 2

export interface EtcdRunResult {
  readonly seed: number
  readonly ok: boolean
  readonly violations: string[]
  readonly faults: FaultWindow[]
  readonly grants: number
  /** Grants whose fence could not be read back (left out of the check). */
  readonly unconfirmedGrants: number
  readonly wallMs: number
}

interface Client { proc: ChildProcess, pending: Map<number, (m: { ok: boolean, error?: string }) => void> }

export async function runEtcdOnce (o: { seed: number, durationMs: number, basePort: number }): Promise<EtcdRunResult> {
  const launched = machineNow()
  const etcd = await EtcdMembers.start(o.basePort)
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
    const endpoint = `http://127.0.0.1:${etcd.members[i].clientPort}`
    const proc = spawn(process.execPath, ['--import', 'tsx', entry, JSON.stringify({ endpoint, ttlSeconds: TTL_S })], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'], serialization: 'advanced' })
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
  try {
    for (let i = 0; i < 3; i++) await startClient(i)
    await sleep(2000)
    const rng = new Prng(o.seed ^ 0x5eed)
    for (const f of planFaults(o.seed, { durationMs: o.durationMs, sessionTtlMs: TTL_S * 1000 })) {
      if (f.kind === 'partition') {
        await sleep(f.holdMs + f.gapMs)
        continue
      }
      const leader = etcd.members.indexOf(await etcd.leader())
      const node = f.victim === 'leader' ? leader : rng.pick([0, 1, 2].filter(i => i !== leader))
      const from = machineNow()
      if (f.kind === 'pause') {
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
    for (let i = 0; i < 3; i++) await killClient(i)
    await etcd.stop()
  }
  return { seed: o.seed, ok: violations.length === 0, violations, faults: windows, grants: history.filter(e => e.type === 'granted').length, unconfirmedGrants, wallMs: machineNow() - launched }
}
