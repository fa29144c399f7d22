/**
 * etcd's half of `npm run bench -- locks`: a 3-member etcd 3.4 cluster and
 * three client processes (bench/procs/etcd-lock-client.ts), each using the
 * `etcd3` npm client against one member, as raftmesh's three processes each
 * embed one node.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { machineNow, type CycleTimes } from '../testkit/cluster-processes.js'
import { clientUrl, EtcdMembers } from './etcd-cluster.js'
import type { CycleRequest, LockSide } from './lock-workload.js'

const entry = join(dirname(fileURLToPath(import.meta.url)), 'procs', 'etcd-lock-client.ts')

interface Client {
  proc: ChildProcess
  readonly pending: Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>
}

export class EtcdLockSide implements LockSide {
  readonly name = 'etcd 3.4 + etcd3 (3 members, 3 client processes)'
  private readonly clients: Client[] = []
  private nextId = 0

  private constructor (private readonly etcd: EtcdMembers, private readonly ttlSeconds: number) {}

  /** `ttlSeconds`: each lock's lease, the counterpart of raftmesh's session TTL. */
  static async start (ttlSeconds: number): Promise<EtcdLockSide> {
    const side = new EtcdLockSide(await EtcdMembers.start(), ttlSeconds)
    try {
      for (let i = 0; i < 3; i++) side.clients.push(await side.spawnClient(i))
    } catch (err) {
      await side.stop()
      throw err
    }
    return side
  }

  private async spawnClient (i: number): Promise<Client> {
    const endpoint = clientUrl(this.etcd.members[i])
    const proc = spawn(process.execPath, ['--import', 'tsx', entry, JSON.stringify({ endpoint, ttlSeconds: this.ttlSeconds })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const c: Client = { proc, pending: new Map() }
    proc.on('message', (m: { id?: number, ok?: boolean, error?: string }) => {
      if (m.id === undefined) return
      const w = c.pending.get(m.id)
      c.pending.delete(m.id)
      if (m.ok === true) w?.resolve(m)
      else w?.reject(new Error(`etcd client ${i + 1}: ${m.error ?? 'failed'}`))
    })
    proc.once('exit', code => {
      for (const w of c.pending.values()) w.reject(new Error(`etcd client ${i + 1} exited (${String(code)})`))
      c.pending.clear()
    })
    await new Promise<void>((resolve, reject) => {
      proc.once('message', () => { resolve() })
      proc.once('exit', code => { reject(new Error(`etcd client ${i + 1} exited with ${String(code)} before it was ready`)) })
    })
    return c
  }

  private async request (i: number, body: object): Promise<any> {
    const c = this.clients[i]
    const id = ++this.nextId
    return await new Promise((resolve, reject) => {
      c.pending.set(id, { resolve, reject })
      c.proc.send({ ...body, id })
    })
  }

  async leader (): Promise<number> {
    return this.etcd.members.indexOf(await this.etcd.leader())
  }

  async cycle (i: number, r: CycleRequest): Promise<CycleTimes> {
    return await this.request(i, { type: r.shared ? 'contend' : 'cycle', key: r.key, count: r.count, maxMs: r.maxMs })
  }

  async failover (signal: 'SIGKILL' | 'SIGSTOP', round: number): Promise<number> {
    const l = await this.leader()
    const member = this.etcd.members[l]
    const survivor = (l + 1) % 3
    const at = machineNow()
    const gone = signal === 'SIGKILL' ? this.etcd.kill(member) : Promise.resolve(this.etcd.signal(member, 'SIGSTOP'))
    let grantedAt: number | null = null
    // As kv's failover: one attempt at a time, each with a 250 ms deadline, each on a fresh key.
    for (let attempt = 0; grantedAt === null; attempt++) {
      if (machineNow() - at > 30_000) throw new Error(`etcd: no lock acquired within 30 s of ${signal} to the leader`)
      const key = `failover-${signal}-${round}-${attempt}`
      try {
        grantedAt = (await this.request(survivor, { type: 'try-acquire', key, timeoutMs: 250 })).grantedAt as number
        await this.request(survivor, { type: 'release', key })
      } catch {
        await new Promise(resolve => setTimeout(resolve, 2))
      }
    }
    await gone
    if (signal === 'SIGKILL') await this.etcd.restart(member)
    else {
      this.etcd.signal(member, 'SIGCONT')
      await this.etcd.waitHealthy()
    }
    return grantedAt - at
  }

  async holderKilled (): Promise<{ ms: number, lostBeforeKill: string | null }> {
    const l = await this.leader()
    const holder = (l + 1) % 3
    const waiter = (l + 2) % 3
    await this.request(holder, { type: 'acquire', key: 'holder-killed', timeoutMs: 10_000 })
    const waiting = this.request(waiter, { type: 'acquire', key: 'holder-killed', timeoutMs: 60_000 })
    // Let the waiter's first attempt fail and its watch start.
    await new Promise(resolve => setTimeout(resolve, 500))
    const c = this.clients[holder]
    const exited = new Promise(resolve => c.proc.once('exit', resolve))
    const at = machineNow()
    c.proc.kill('SIGKILL')
    const { grantedAt } = await waiting
    await this.request(waiter, { type: 'release', key: 'holder-killed' })
    await exited
    this.clients[holder] = await this.spawnClient(holder)
    // etcd3's Lock reports no loss; a waiter granted before the kill would show as a negative time.
    return { ms: grantedAt - at, lostBeforeKill: null }
  }

  async stop (): Promise<void> {
    for (const c of this.clients) {
      if (c.proc.exitCode === null && c.proc.signalCode === null) {
        const exited = new Promise(resolve => c.proc.once('exit', resolve))
        c.proc.kill('SIGKILL')
        await exited
      }
    }
    await this.etcd.stop()
  }
}
