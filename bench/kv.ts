/**
 * `npm run bench -- kv`: the same key-value workload against 3 kv-node
 * processes (raftmesh over libp2p) and a 3-member etcd 3.4 cluster, in the
 * same run, with the ratios. Both are driven over HTTP with keep-alive by a
 * client that sends to the member that answered last (the leader).
 */
import { pathToFileURL } from 'node:url'
import { LocalKvCluster } from '../testkit/local-cluster.js'
import { etcdAvailable, startEtcdCluster } from './etcd-cluster.js'
import { runPairedSequential, type PairedResult } from './kv-paired.js'
import { round2, runKvWorkload, type KvTarget, type KvWorkloadOptions, type KvWorkloadResult } from './kv-workload.js'

/** A PUT through the cluster's client, which follows redirects to the leader. */
export function clusterPut (c: LocalKvCluster): KvTarget['put'] {
  return async (key, value, timeoutMs = 5000) => {
    const r = await c.client.send('PUT', `/kv/${key}`, value, { attempts: timeoutMs < 1000 ? 1 : 6, timeoutMs })
    if (r.status !== 200) throw new Error(`PUT answered ${r.status}`)
  }
}

async function raftmeshTarget (): Promise<KvTarget> {
  const c = await LocalKvCluster.start({ nodes: 3 })
  let killed: Awaited<ReturnType<typeof c.waitForLeader>> | null = null
  await c.waitForLeader()
  return {
    name: 'raftmesh kv-node (3 processes)',
    put: clusterPut(c),
    killLeader: async () => {
      killed = await c.waitForLeader()
      await c.kill(killed)
    },
    restartKilled: async () => {
      if (killed === null) return
      await c.launch(killed)
      killed = null
      // Whole again: every node answers and agrees on the commit index.
      for (;;) {
        const s = await Promise.all(c.nodes.map(async n => await c.status(n)))
        if (s.every(x => x !== null && x.appliedIndex === s[0]?.commitIndex)) break
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    },
    stop: async () => { await c.stop() }
  }
}

export interface KvBenchResult {
  bench: 'kv'
  raftmesh: KvWorkloadResult
  etcd: KvWorkloadResult | { skipped: string }
  ratios?: { putP50: number, putP99: number, throughput: number, failover: number }
  /** Sequential PUTs again, on fresh clusters both up, in alternating blocks (see kv-paired.ts). */
  paired?: PairedResult
}

async function runPaired (opts: KvWorkloadOptions): Promise<PairedResult> {
  const r = await raftmeshTarget()
  try {
    const e = await startEtcdCluster()
    try {
      return await runPairedSequential(r, e, { warmupSeconds: opts.warmupSeconds })
    } finally {
      await e.stop()
    }
  } finally {
    await r.stop()
  }
}

export async function runKvBench (opts: KvWorkloadOptions = {}): Promise<KvBenchResult> {
  const run = async (target: KvTarget): Promise<KvWorkloadResult> => {
    try {
      return await runKvWorkload(target, opts)
    } finally {
      await target.stop()
    }
  }
  const raftmesh = await run(await raftmeshTarget())
  if (!etcdAvailable()) return { bench: 'kv', raftmesh, etcd: { skipped: 'etcd not installed (apt-get install -y etcd-server)' } }
  const etcd = await run(await startEtcdCluster())
  const paired = await runPaired(opts)
  return {
    bench: 'kv',
    raftmesh,
    etcd,
    paired,
    ratios: {
      putP50: round2(raftmesh.sequential.p50Ms / etcd.sequential.p50Ms),
      putP99: round2(raftmesh.sequential.p99Ms / etcd.sequential.p99Ms),
      throughput: round2(raftmesh.concurrent.perSecond / etcd.concurrent.perSecond),
      failover: round2(raftmesh.failover.medianMs / etcd.failover.medianMs)
    }
  }
}

export function kvTable (r: KvBenchResult): string {
  const row = (w: KvWorkloadResult): string =>
    `${w.target.padEnd(32)} ${String(w.sequential.p50Ms).padStart(9)} ${String(w.sequential.p99Ms).padStart(9)} ${String(w.concurrent.perSecond).padStart(9)} ${String(w.failover.medianMs).padStart(12)}`
  const lines = ['target                           PUT p50ms PUT p99ms   PUT/s64  failover ms', row(r.raftmesh)]
  if ('target' in r.etcd) lines.push(row(r.etcd))
  else lines.push(`etcd: ${r.etcd.skipped}`)
  if (r.ratios !== undefined) lines.push(`raftmesh/etcd: p50 x${r.ratios.putP50}, p99 x${r.ratios.putP99}, throughput x${r.ratios.throughput}, failover x${r.ratios.failover}`)
  const p = r.paired
  if (p !== undefined) {
    lines.push(`alternating blocks (${p.rounds} x ${p.putsPerBlock} PUTs each, both up): p50 ${p.a.sequential.p50Ms} against ${p.b.sequential.p50Ms} ms, x${p.p50Ratio}`)
    lines.push(`  per-round p50 ratio ${p.roundRatios.join(' ')}, median x${p.medianRatio}`)
  }
  return lines.join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await runKvBench()
  console.log(JSON.stringify(r, null, 2))
  console.error(kvTable(r))
}
