/**
 * One process of `npm run bench -- idle`: embeds a Cluster (expect: 3) and
 * does nothing else; answers `sample` with its own counters, so the bench
 * can take differences over an idle window: process CPU, context switches
 * (Linux /proc), memory, and the Raft messages and mesh calls it sent (from
 * the node's own Prometheus registry, as an operator would read them).
 * With `profile-start` and `profile-stop` (`path`) it runs the V8 CPU
 * profiler over the window in between and writes the .cpuprofile there.
 *
 * Usage (spawned with an IPC channel by bench/idle.ts):
 *   node --import tsx bench/procs/idle-peer.ts '<{"nodeId","dataDir","listen","bootstrap","quiesceAfterTicks"}>'
 * The cluster secret comes in RAFTMESH_BENCH_SECRET.
 */
import { readFile } from 'node:fs/promises'
import { startBenchCluster, type BenchNodeArgs } from './bench-cluster.js'
import { CpuProfileWindow } from './cpu-profile-window.js'
import { exitWithParent } from './lifecycle.js'

interface PeerArgs extends BenchNodeArgs { quiesceAfterTicks?: number }

export interface IdleSample {
  readonly role: string
  readonly cpuUs: number
  readonly voluntarySwitches: number
  readonly involuntarySwitches: number
  readonly rssBytes: number
  readonly raftSent: number
  readonly rpcCalls: number
}

const args = JSON.parse(process.argv[2] ?? '{}') as PeerArgs
const cluster = await startBenchCluster('bench-idle', args, args.quiesceAfterTicks === undefined ? {} : { quiesceAfterTicks: args.quiesceAfterTicks })
exitWithParent(async () => { await cluster.stop() })

async function counter (name: string): Promise<number> {
  const m = cluster.metrics.getSingleMetric(name)
  const v = m === undefined ? undefined : (await m.get()).values[0]?.value
  return v ?? 0
}

async function switches (): Promise<[number, number]> {
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '')
  const field = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN)
  return [field('voluntary_ctxt_switches'), field('nonvoluntary_ctxt_switches')]
}

const profiler = new CpuProfileWindow()

async function profile (op: 'profile-start' | 'profile-stop', path: string | undefined): Promise<void> {
  if (op === 'profile-start') await profiler.start()
  else if (path === undefined) throw new Error('profile-stop needs a path')
  else await profiler.stop(path)
}

process.on('message', (m: { id?: number, type?: string, path?: string }) => {
  if (m.type === 'profile-start' || m.type === 'profile-stop') {
    const op = m.type
    void profile(op, m.path).then(() => process.send?.({ id: m.id }), (err: unknown) => process.send?.({ id: m.id, error: String(err) }))
    return
  }
  if (m.type !== 'sample') return
  void (async () => {
    const cpu = process.cpuUsage()
    const [voluntary, involuntary] = await switches()
    const sample: IdleSample = {
      role: cluster.status().raft.role,
      cpuUs: cpu.user + cpu.system,
      voluntarySwitches: voluntary,
      involuntarySwitches: involuntary,
      rssBytes: process.memoryUsage().rss,
      raftSent: await counter('raftmesh_raft_messages_sent_total'),
      rpcCalls: await counter('raftmesh_rpc_calls_total')
    }
    process.send?.({ id: m.id, sample })
  })()
})
process.send?.({ type: 'ready' })
