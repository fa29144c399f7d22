/**
 * A 3-member etcd 3.4 cluster for side-by-side benchmarks, on 127.0.0.1 or
 * with member i in a network namespace of a NetnsLab (`placement`; the lab
 * must let this process reach the members: hostLink or clientLinks).
 * `EtcdMembers` runs the processes and hurts them (kill, pause, restart);
 * `startEtcdCluster` drives it through etcd's HTTP/JSON gateway with
 * keep-alive connections for the key-value workload.
 * Needs the `etcd` binary (`apt-get install -y etcd-server`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KvClient } from '../testkit/kv-client.js'
import { LOOPBACK, placedCommand, type Placement } from '../testkit/placement.js'
import type { KvTarget } from './kv-workload.js'

export interface EtcdMember {
  readonly name: string
  /** Where it runs; `placement.host` is the address its client and peer URLs use. */
  readonly placement: Placement
  readonly clientPort: number
  readonly peerPort: number
  proc: ChildProcess | null
}

/** The member's client URL. */
export function clientUrl (m: EtcdMember): string {
  return `http://${m.placement.host}:${m.clientPort}`
}

// The same keep-alive client raftmesh is measured with, aimed at one member at a time.
const client = new KvClient(() => [])

async function post (m: EtcdMember, path: string, body: unknown, timeoutMs: number): Promise<any> {
  const r = await client.raw(`${m.placement.host}:${m.clientPort}`, 'POST', path, JSON.stringify(body), timeoutMs, true)
  if (r.status !== 200) throw new Error(`etcd ${path} answered ${r.status}: ${JSON.stringify(r.body)}`)
  return r.body
}

const b64 = (s: string): string => Buffer.from(s).toString('base64')

export function etcdAvailable (): boolean {
  return spawnSync('etcd', ['--version']).status === 0
}

/** Three etcd processes with default settings (fsync on, 100 ms heartbeat, 1 s election timeout). */
export class EtcdMembers {
  readonly members: EtcdMember[]
  private readonly initialCluster: string

  private constructor (private readonly dir: string, basePort: number, placement: (i: number) => Placement) {
    this.members = [0, 1, 2].map(i => ({ name: `e${i + 1}`, placement: placement(i), clientPort: basePort + i * 2, peerPort: basePort + i * 2 + 1, proc: null }))
    this.initialCluster = this.members.map(m => `${m.name}=http://${m.placement.host}:${m.peerPort}`).join(',')
  }

  static async start (basePort = 23790, placement: (i: number) => Placement = () => LOOPBACK): Promise<EtcdMembers> {
    const e = new EtcdMembers(await mkdtemp(join(tmpdir(), 'raftmesh-etcd-')), basePort, placement)
    for (const m of e.members) e.launch(m, 'new')
    await e.waitHealthy()
    return e
  }

  private launch (m: EtcdMember, state: 'new' | 'existing'): void {
    const peerUrl = `http://${m.placement.host}:${m.peerPort}`
    // ip netns exec execs etcd: the PID signalled is etcd's.
    const [cmd, argv] = placedCommand(m.placement, 'etcd', [
      '--name', m.name, '--data-dir', join(this.dir, m.name),
      '--listen-client-urls', clientUrl(m), '--advertise-client-urls', clientUrl(m),
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', this.initialCluster, '--initial-cluster-state', state, '--initial-cluster-token', 'raftmesh-bench',
      '--log-level', 'error'
    ])
    m.proc = spawn(cmd, argv, { stdio: 'ignore' })
  }

  live (): EtcdMember[] {
    return this.members.filter(m => m.proc !== null)
  }

  async put (m: EtcdMember, key: string, value: string, timeoutMs: number): Promise<void> {
    await post(m, '/v3/kv/put', { key: b64(key), value: b64(value) }, timeoutMs)
  }

  /** The member that reports itself leader, asking the live ones in turn. */
  async leader (except: EtcdMember[] = []): Promise<EtcdMember> {
    for (const m of this.live().filter(x => !except.includes(x))) {
      try {
        const s = await post(m, '/v3/maintenance/status', {}, 1000)
        if (s.header?.member_id === s.leader) return m
      } catch {}
    }
    throw new Error('etcd: no member reports itself as leader')
  }

  /**
   * The leader, once a live member reports one; after `timeoutMs` throws.
   * There may be none for a while after a fault is lifted: etcd 3.4 runs
   * without pre-vote, so a member back from a partition with a higher term
   * makes the leader step down and an election follow.
   */
  async waitForLeader (timeoutMs = 30_000): Promise<EtcdMember> {
    const end = Date.now() + timeoutMs
    for (;;) {
      try {
        return await this.leader()
      } catch (err) {
        if (Date.now() > end) throw new Error(`${(err as Error).message} within ${timeoutMs} ms`)
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
  }

  /** Every member answers a write and one of them leads. */
  async waitHealthy (except: EtcdMember[] = []): Promise<void> {
    const end = Date.now() + 30_000
    for (;;) {
      try {
        for (const m of this.live().filter(x => !except.includes(x))) await this.put(m, 'health', 'ok', 1000)
        await this.leader(except)
        return
      } catch (err) {
        if (Date.now() > end) throw new Error(`etcd cluster not healthy after 30 s: ${(err as Error).message}`)
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
  }

  /** SIGKILLs a member and waits for its process to be gone. */
  async kill (m: EtcdMember): Promise<void> {
    const p = m.proc
    if (p === null) return
    // Out of live() at once: the caller times from the signal, not from the exit.
    m.proc = null
    const gone = p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise(resolve => p.once('exit', resolve))
    p.kill('SIGKILL')
    await gone
  }

  /** Starts a killed member again on its data directory and waits until the cluster is whole. */
  async restart (m: EtcdMember): Promise<void> {
    if (m.proc !== null) return
    this.launch(m, 'existing')
    await this.waitHealthy()
  }

  signal (m: EtcdMember, sig: 'SIGSTOP' | 'SIGCONT'): void {
    m.proc?.kill(sig)
  }

  async stop (): Promise<void> {
    for (const m of this.members) {
      m.proc?.kill('SIGCONT')
      await this.kill(m)
    }
    await rm(this.dir, { recursive: true, force: true })
  }
}

export async function startEtcdCluster (basePort = 23790): Promise<KvTarget> {
  const e = await EtcdMembers.start(basePort)
  let killed: { member: EtcdMember, gone: Promise<void> } | null = null
  let next = 0
  // Like a leader-aware client: send to the member that last answered, else round-robin.
  let preferred: EtcdMember | null = await e.leader()
  const put = async (key: string, value: string, timeoutMs = 5000): Promise<void> => {
    const ms = e.live()
    const m = preferred !== null && ms.includes(preferred) ? preferred : ms[next++ % ms.length]
    try {
      await e.put(m, key, value, timeoutMs)
    } catch (err) {
      if (preferred === m) preferred = null
      throw err
    }
  }
  return {
    name: 'etcd 3.4 (3 members)',
    put,
    killLeader: async () => {
      const l = await e.leader()
      // Not awaited: the workload times failover from the moment the signal is sent.
      killed = { member: l, gone: e.kill(l) }
    },
    restartKilled: async () => {
      const k = killed
      if (k === null) return
      await k.gone
      killed = null
      await e.restart(k.member)
      preferred = await e.leader()
    },
    stop: async () => { await e.stop() }
  }
}
