/**
 * A 3-member etcd 3.4 cluster on 127.0.0.1 for side-by-side benchmarks,
 * driven through etcd's HTTP/JSON gateway with keep-alive connections.
 * Needs the `etcd` binary (`apt-get install -y etcd-server`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KvClient } from '../testkit/kv-client.js'
import type { KvTarget } from './kv-workload.js'

interface Member { name: string, clientPort: number, peerPort: number, proc: ChildProcess | null }

// The same keep-alive client raftmesh is measured with, aimed at one member at a time.
const client = new KvClient(() => [])

async function post (port: number, path: string, body: unknown, timeoutMs: number): Promise<any> {
  const r = await client.raw(`127.0.0.1:${port}`, 'POST', path, JSON.stringify(body), timeoutMs, true)
  if (r.status !== 200) throw new Error(`etcd ${path} answered ${r.status}: ${JSON.stringify(r.body)}`)
  return r.body
}

const b64 = (s: string): string => Buffer.from(s).toString('base64')

export function etcdAvailable (): boolean {
  return spawnSync('etcd', ['--version']).status === 0
}

export async function startEtcdCluster (basePort = 23790): Promise<KvTarget> {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-etcd-'))
  const members: Member[] = [0, 1, 2].map(i => ({ name: `e${i + 1}`, clientPort: basePort + i * 2, peerPort: basePort + i * 2 + 1, proc: null }))
  const initialCluster = members.map(m => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',')
  const launch = (m: Member, state: 'new' | 'existing'): void => {
    m.proc = spawn('etcd', [
      '--name', m.name, '--data-dir', join(dir, m.name),
      '--listen-client-urls', `http://127.0.0.1:${m.clientPort}`, '--advertise-client-urls', `http://127.0.0.1:${m.clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-cluster', initialCluster, '--initial-cluster-state', state, '--initial-cluster-token', 'raftmesh-bench',
      '--log-level', 'error'
    ], { stdio: 'ignore' })
  }
  for (const m of members) launch(m, 'new')
  let killed: Member | null = null
  let next = 0

  const live = (): Member[] => members.filter(m => m !== killed)
  // Like a leader-aware client: send to the member that last answered, else round-robin.
  let preferred: Member | null = null
  const put = async (key: string, value: string, timeoutMs = 5000): Promise<void> => {
    const ms = live()
    const m = preferred !== null && ms.includes(preferred) ? preferred : ms[next++ % ms.length]
    try {
      await post(m.clientPort, '/v3/kv/put', { key: b64(key), value: b64(value) }, timeoutMs)
    } catch (err) {
      if (preferred === m) preferred = null
      throw err
    }
  }
  const leader = async (): Promise<Member> => {
    for (const m of live()) {
      try {
        const s = await post(m.clientPort, '/v3/maintenance/status', {}, 1000)
        const found = members.find(x => x !== killed && s.header?.member_id === s.leader && x.clientPort === m.clientPort)
        if (found !== undefined) return found
      } catch {}
    }
    throw new Error('etcd: no member reports itself as leader')
  }
  const waitHealthy = async (): Promise<void> => {
    const end = Date.now() + 30_000
    for (;;) {
      try {
        for (const m of members) await post(m.clientPort, '/v3/kv/put', { key: b64('health'), value: b64('ok') }, 1000)
        await leader()
        return
      } catch (err) {
        if (Date.now() > end) throw new Error(`etcd cluster not healthy after 30 s: ${(err as Error).message}`)
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
  }
  await waitHealthy()
  preferred = await leader()
  return {
    name: 'etcd 3.4 (3 members)',
    put,
    killLeader: async () => {
      const l = await leader()
      killed = l
      l.proc?.kill('SIGKILL')
    },
    restartKilled: async () => {
      const k = killed
      if (k === null) return
      await new Promise(resolve => k.proc?.exitCode !== null || k.proc?.signalCode !== null ? resolve(null) : k.proc?.once('exit', resolve))
      killed = null
      launch(k, 'existing')
      await waitHealthy()
      preferred = await leader()
    },
    stop: async () => {
      for (const m of members) m.proc?.kill('SIGKILL')
      await new Promise(resolve => setTimeout(resolve, 200))
      await rm(dir, { recursive: true, force: true })
    }
  }
}
