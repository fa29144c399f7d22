/**
 * `npm run bench -- cache`: a replicated cache across 3 and then 5 mesh
 * nodes, each in its own process (bench/procs/cache-peer.ts) on 127.0.0.1,
 * libp2p over TCP with a private network, gossipsub, the mesh RPC for
 * anti-entropy. This process only orchestrates over IPC. Node n1 writes;
 * every other node records, per key, the time from set() on n1 to the
 * change event on that node.
 *
 * - propagation: `pacedCount` sets at one per `intervalMs` (1,000/s by
 *   default); the figure is the latency of the LAST node to get each set
 *   (visible on all), and the pooled per-node latency;
 * - throughput: `floodCount` sets as fast as set() takes them (a turn of
 *   the event loop every `chunk`); the figure is sets visible on every node
 *   per second, from the first set to the last arrival anywhere, with the
 *   gossip messages they travelled in (batching) and the sets some node
 *   had not got when the wait (3 minutes) ended. Sets lost by gossip under
 *   the flood arrive by anti-entropy (the exchanges are counted).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from '../testkit/local-cluster.js'
import type { LatencySummary } from './latency.js'
import { Latency } from './latency.js'
import { BenchChild, waitFor } from './transport.js'

const peerScript = join(dirname(fileURLToPath(import.meta.url)), 'procs', 'cache-peer.ts')

export interface CacheBenchOptions {
  readonly sizes?: readonly number[]
  readonly pacedCount?: number
  readonly intervalMs?: number
  readonly floodCount?: number
  readonly chunk?: number
  /** Value padding, characters. Default 100. */
  readonly valueBytes?: number
  readonly settleMs?: number
}

export interface CacheSizeResult {
  processes: number
  loadAverage: number
  propagation: { sets: number, setsPerSecond: number, lastNode: LatencySummary, anyNode: LatencySummary, notDelivered: number }
  throughput: { sets: number, setSeconds: number, visibleEverywherePerSecond: number, gossipMessages: number, notDelivered: number, antiEntropyExchanges: number }
}

interface Report { delivered: number, lastArrival: number, latency: Float64Array, stats: { syncs: number, channel: { batchesSent: number } } }
interface SetResult { published: number, firstSet: number, lastSet: number, stats: { channel: { batchesSent: number } } }

async function runSize (n: number, o: Required<Omit<CacheBenchOptions, 'sizes'>>): Promise<CacheSizeResult> {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-bench-cache-'))
  const env = { RAFTMESH_BENCH_SECRET: randomBytes(32).toString('hex') }
  const children: BenchChild[] = []
  try {
    const loadAverage = Math.round(loadavg()[0] * 100) / 100
    const listen: string[] = []
    for (let i = 0; i < n; i++) listen.push(`/ip4/127.0.0.1/tcp/${await freePort()}`)
    for (let i = 1; i <= n; i++) children.push(new BenchChild(`n${i}`, peerScript, { nodeId: `n${i}`, clusterName: 'bench-cache', dataDir: join(dir, `n${i}`), listen: listen[i - 1], bootstrap: i === 1 ? [] : [listen[0]] }, env))
    await Promise.all(children.map(async c => await c.ready))
    await waitFor(`all ${n} nodes to see each other and the cache`, async () => (await Promise.all(children.map(async c => await c.call<{ members: number, subscribers: number }>({ type: 'status' })))).every(s => s.members === n - 1 && s.subscribers === n - 1), 30_000, 50)
    const [writer, ...receivers] = children

    const run = async (phase: string, count: number, set: object, timeoutMs: number): Promise<{ set: SetResult, reports: Report[] }> => {
      await Promise.all(receivers.map(async c => await c.call({ type: 'expect', phase, capacity: count })))
      const result = await writer.call<SetResult>({ type: 'set', phase, count, size: o.valueBytes, ...set }, timeoutMs)
      // A receiver busy applying may answer late: that is "not yet", not the end of the wait.
      const progress = async (c: BenchChild): Promise<number> => await c.call<{ delivered: number }>({ type: 'progress' }, 60_000).then(p => p.delivered, () => -1)
      await waitFor(`${phase}: every set on every node`, async () => (await Promise.all(receivers.map(progress))).every(d => d === count), timeoutMs, 200).catch(() => {})
      await new Promise(resolve => setTimeout(resolve, o.settleMs))
      const reports = await Promise.all(receivers.map(async c => await c.call<Report>({ type: 'report', count }, 30_000)))
      return { set: result, reports }
    }

    const paced = await run('paced', o.pacedCount, { mode: 'paced', intervalMs: o.intervalMs }, 120_000)
    const last = new Latency()
    const any = new Latency()
    let notDelivered = 0
    for (let i = 0; i < o.pacedCount; i++) {
      const per = paced.reports.map(r => r.latency[i])
      for (const v of per) if (!Number.isNaN(v)) any.record(v)
      if (per.some(v => Number.isNaN(v))) notDelivered++
      else last.record(Math.max(...per))
    }
    const pacedSeconds = (paced.set.lastSet - paced.set.firstSet) / 1000

    const before = paced.set.stats.channel.batchesSent
    const flood = await run('flood', o.floodCount, { mode: 'flood', chunk: o.chunk }, 180_000)
    const lastArrival = Math.max(...flood.reports.map(r => r.lastArrival))
    const floodSeconds = (lastArrival - flood.set.firstSet) / 1000
    const floodNotDelivered = flood.reports.reduce((m, r) => Math.max(m, o.floodCount - r.delivered), 0)
    return {
      processes: n,
      loadAverage,
      propagation: { sets: o.pacedCount, setsPerSecond: Math.round(o.pacedCount / pacedSeconds), lastNode: last.summary(), anyNode: any.summary(), notDelivered },
      throughput: {
        sets: o.floodCount,
        setSeconds: Math.round((flood.set.lastSet - flood.set.firstSet)) / 1000,
        visibleEverywherePerSecond: floodNotDelivered === 0 ? Math.round(o.floodCount / floodSeconds) : 0,
        gossipMessages: flood.set.stats.channel.batchesSent - before,
        notDelivered: floodNotDelivered,
        antiEntropyExchanges: flood.reports.reduce((s, r) => s + r.stats.syncs, 0)
      }
    }
  } finally {
    await Promise.all(children.map(async c => { await c.stop() }))
    await rm(dir, { recursive: true, force: true })
  }
}

export async function runCacheBench (opts: CacheBenchOptions = {}): Promise<{ sizes: CacheSizeResult[], options: object }> {
  const o = { pacedCount: 2000, intervalMs: 1, floodCount: 50_000, chunk: 500, valueBytes: 100, settleMs: 500, ...opts }
  const sizes: CacheSizeResult[] = []
  for (const n of opts.sizes ?? [3, 5]) sizes.push(await runSize(n, o))
  return { sizes, options: o }
}

export function cacheTable (r: { sizes: CacheSizeResult[] }): string {
  const rows = ['nodes | set→all p50 / p99 / max ms (at sets/s) | set→one p50 / p99 ms | not delivered | flood: sets visible on all /s | gossip msgs for the flood | not delivered | anti-entropy exchanges']
  for (const s of r.sizes) {
    const p = s.propagation
    const t = s.throughput
    rows.push(`${s.processes} | ${p.lastNode.p50Ms} / ${p.lastNode.p99Ms} / ${p.lastNode.maxMs} (${p.setsPerSecond}) | ${p.anyNode.p50Ms} / ${p.anyNode.p99Ms} | ${p.notDelivered} | ${t.visibleEverywherePerSecond} | ${t.gossipMessages} for ${t.sets} | ${t.notDelivered} | ${t.antiEntropyExchanges}`)
  }
  return rows.join('\n')
}
