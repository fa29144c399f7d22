/**
 * `npm run bench -- rpc`: the mesh RPC between two real processes on
 * 127.0.0.1 (libp2p TCP, private network, noise, yamux), next to the raw
 * Raft stream round trip measured in the same run against the same peer
 * (bench/procs/transport-peer.ts). For each, `inFlight` calls are kept
 * outstanding for `seconds` (1 in flight: one call after another), giving
 * the round-trip latency and the calls per second.
 *
 * - raft: a Heartbeat a→b answered by a HeartbeatResp b→a, each on its
 *   direction's long-lived Raft stream (a one-way protocol: two streams);
 * - rpc: `echo` with a 100-byte body, request and response on a's one
 *   long-lived RPC stream to b.
 */
import { randomBytes } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import { MeshRpc, type MeshRpcStats } from '../gossip/rpc.js'
import { heartbeatRoundTrips } from './heartbeat-round-trip.js'
import { Latency, type LatencySummary } from './latency.js'
import { startBenchPair } from './transport.js'

export interface RpcBenchOptions {
  /** Round trips of each kind before measuring (also opens the streams). Default 500. */
  readonly warmup?: number
  /** Seconds of each measured run. Default 3. */
  readonly seconds?: number
  /** Calls kept outstanding, one run each. Default [1, 64]. */
  readonly inFlight?: readonly number[]
}

export interface RoundTripRun {
  kind: 'raft' | 'rpc'
  inFlight: number
  seconds: number
  roundTrips: number
  roundTripsPerSecond: number
  latency: LatencySummary
}

export interface RpcBenchResult {
  bench: 'rpc'
  setup: string
  runs: RoundTripRun[]
  /** Counters at the end: nothing may be bad or failed; one RPC stream for the whole run. */
  stats: { a: MeshRpcStats, b: MeshRpcStats }
}

const r2 = (x: number): number => Math.round(x * 100) / 100

/** Keeps `inFlight` round trips going for `seconds`. */
async function measure (kind: 'raft' | 'rpc', roundTrip: () => Promise<void>, inFlight: number, seconds: number): Promise<RoundTripRun> {
  const latency = new Latency()
  let done = 0
  const start = performance.now()
  const end = start + seconds * 1000
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now()
      await roundTrip()
      latency.since(t0)
      done++
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker))
  const elapsed = (performance.now() - start) / 1000
  return { kind, inFlight, seconds: r2(elapsed), roundTrips: done, roundTripsPerSecond: Math.round(done / elapsed), latency: latency.summary() }
}

export async function runRpcBench (opts: RpcBenchOptions = {}): Promise<RpcBenchResult> {
  const warmup = opts.warmup ?? 500
  const seconds = opts.seconds ?? 3
  const inFlights = opts.inFlight ?? [1, 64]
  const pair = await startBenchPair('rpc')
  let rpc: MeshRpc | null = null
  try {
    const { child, mesh, transport: t } = pair
    const r = rpc = await MeshRpc.create(mesh)

    const raftRoundTrip = heartbeatRoundTrips(t, 'a', 'b')
    const body = randomBytes(100)
    const rpcRoundTrip = async (): Promise<void> => {
      const answer = await r.call('b', 'echo', body, { timeoutMs: 5000 })
      if (answer.byteLength !== body.byteLength) throw new Error('echo answered with another body')
    }

    for (let i = 0; i < warmup; i++) await raftRoundTrip()
    for (let i = 0; i < warmup; i++) await rpcRoundTrip()
    const runs: RoundTripRun[] = []
    for (const n of inFlights) {
      runs.push(await measure('raft', raftRoundTrip, n, seconds))
      runs.push(await measure('rpc', rpcRoundTrip, n, seconds))
    }
    const b = await child.call<{ rpc: MeshRpcStats }>({ type: 'stats' })
    return {
      bench: 'rpc',
      setup: '2 processes on 127.0.0.1: libp2p TCP + pre-shared-key private network + noise + yamux; raft = Heartbeat/HeartbeatResp on the two long-lived /raftmesh/raft/1.0.0 streams; rpc = echo of 100 bytes on one long-lived /raftmesh/rpc/1.0.0 stream',
      runs,
      stats: { a: r.stats(), b: b.rpc }
    }
  } finally {
    await rpc?.close()
    await pair.stop()
  }
}

export function rpcTable (r: RpcBenchResult): string {
  return [
    'round trips, 2 processes      p50 ms   p99 ms   max ms      rt/s',
    ...r.runs.map(x => `${x.kind.padEnd(5)} ${String(x.inFlight).padStart(3)} in flight ${String(x.latency.p50Ms).padStart(10)} ${String(x.latency.p99Ms).padStart(8)} ${String(x.latency.maxMs).padStart(8)} ${String(x.roundTripsPerSecond).padStart(9)}`)
  ].join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await runRpcBench()
  console.log(JSON.stringify(r, null, 2))
  console.error(rpcTable(r))
}
