/**
 * `npm run bench -- gossip`: a GossipChannel across 3 and then 5 mesh
 * nodes, each in its own process (bench/procs/gossip-peer.ts) on 127.0.0.1:
 * libp2p over TCP with a private network (random secret), gossipsub. This
 * process only orchestrates over IPC; it runs no mesh node. Node n1
 * publishes, every other node records, per message, the time from the
 * publish() call to its delivery ('message' event) on that node.
 *
 * - latency: `messages` payloads published at a steady `intervalMs`; the
 *   figure is the latency of the LAST node to get each message (delivered
 *   everywhere), plus the pooled per-node latency;
 * - sustained throughput: n1 publishes as fast as the channel takes them
 *   for `floodSeconds` (one full batch handed to gossipsub, then one turn of
 *   the event loop, repeat) while fewer than `window` messages are
 *   published but not yet delivered by the slowest receiver (this process
 *   relays the receivers' progress to the publisher over IPC). The channel
 *   itself has no backpressure: publish() only queues, and gossipsub's
 *   outbound streams buffer without limit;
 * - overload: the same without the window, so nothing pushes back. Run
 *   last: it breaks connections (pings queue behind the flood and time out)
 *   and can kill a receiver outright (the pnet cipher, xsalsa20's WASM
 *   memory, overflows its 64 MiB maximum), which is then reported instead.
 * The throughput figure is messages delivered to every node per second,
 * from the first publish to the last delivery anywhere. Gaps (the channel's
 * 'gap' events) and losses (messages some node never got, after waiting for
 * the stream to drain) are counted in every run, with the connections that
 * closed and the longest event-loop stall of each process, which explain
 * them.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { MAX_BATCH_ITEMS } from '../gossip/channel-codec.js'
import type { ChannelStats } from '../gossip/channel.js'
import type { LatencySummary } from './latency.js'
import { BenchChild, waitFor } from './transport.js'
import { freePort } from '../testkit/local-cluster.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const peerScript = join(root, 'bench', 'procs', 'gossip-peer.ts')

export interface GossipBenchOptions {
  /** Cluster sizes (processes), run one after the other. Default [3, 5]. */
  readonly sizes?: readonly number[]
  /** Messages of the latency run. Default 2000. */
  readonly messages?: number
  /** Spacing of the latency run's publishes. Default 4 ms (250 messages/s). */
  readonly intervalMs?: number
  /** Payload size. Default 100 bytes. */
  readonly payloadBytes?: number
  /** Seconds of publishing in the throughput run. Default 3. */
  readonly floodSeconds?: number
  /** Cap on messages in the throughput run. Default 500 000. */
  readonly floodMaxMessages?: number
  /** Channel batching; defaults are the channel's (16 KiB, 5 ms). */
  readonly batchBytes?: number
  readonly batchDelayMs?: number
  /** Flow-control window of the sustained run, in messages. Default 16 full batches. */
  readonly window?: number
}

/** Over all processes during a run: what explains losses and stalls. */
export interface TroubleCounts {
  /** libp2p connections closed, and members seen failed (a ping timed out or a connection broke). */
  connectionsClosed: number
  membersFailed: number
  /** The longest event-loop stall of each process, publisher first. */
  loopDelayMaxMs: number[]
}

export interface LossCounts {
  /** Messages at least one receiver never delivered. */
  lostToSome: number
  /** Sum over receivers of messages not delivered. */
  lostDeliveries: number
  /** 'gap' events over all receivers, and the messages they skipped. */
  gaps: number
  gapMessages: number
  /** Copies dropped by the receivers' channels as duplicates. */
  duplicates: number
}

export interface GossipSizeResult {
  processes: number
  receivers: number
  /** 1-minute load average of the machine before this size's run (other work on the machine shows here). */
  loadAverage: number
  /** From spawning the first process: all processes started (mesh node listening), then all seeing each other as members and channel subscribers. */
  readyMs: number
  connectMs: number
  /** Gossipsub mesh peers of the topic on each node when publishing began. */
  meshPeers: number[]
  /** Largest |receiver clock − publisher clock| measured over IPC, and the uncertainty of that measure. */
  clock: { maxSkewMs: number, uncertaintyMs: number }
  latency: LossCounts & TroubleCounts & {
    published: number
    ratePerSecond: number
    /** publish() → delivered on the last receiver, per message delivered to all. */
    lastNode: LatencySummary
    /** publish() → delivered, every (message, receiver) pair. */
    anyNode: LatencySummary
  }
  /** Publishing as fast as the channel takes it while at most `window` messages are not yet delivered everywhere. */
  sustained: FloodResult
  /** Publishing as fast as the channel takes it, with nothing pushing back; or the processes that died of it. */
  overload: FloodResult | OverloadCrash
}

export interface OverloadCrash {
  crashed: Array<{ node: string, exitCode: number | null, error: string | null }>
}

export interface FloodResult extends LossCounts, TroubleCounts {
  /** Flow-control window in messages (published, not yet delivered by the slowest receiver); null for none. */
  window: number | null
  published: number
  publishSeconds: number
  publishedPerSecond: number
  deliveredToAll: number
  /** First publish to the last delivery on any node. */
  seconds: number
  deliveredToAllPerSecond: number
  batchesSent: number
  itemsPerBatch: number
  /** publish() → delivered on the last receiver, under this load. */
  lastNode: LatencySummary
  /** CPU each process used from the start of publishing to the end of draining, in cores; publisher first. */
  cpuCores: number[]
}

export interface GossipBenchResult {
  bench: 'gossip'
  setup: string
  payloadBytes: number
  batching: { batchBytes: number, batchDelayMs: number, maxBatchItems: number, itemsPerFullBatch: number }
  sizes: GossipSizeResult[]
}

interface Trouble { connectionsClosed: number, membersFailed: number, loopDelayMaxMs: number }
interface Report extends Trouble { delivered: number, outOfRange: number, foreign: number, lastArrival: number, gaps: number, gapMessages: number, latency: Float64Array, channel: ChannelStats }
interface Published { published: number, firstPublish: number, lastPublish: number, channel: ChannelStats, error?: string }
interface Status { members: number, connections: number, channelPeers: number, meshPeers: number }

const r3 = (x: number): number => Math.round(x * 1000) / 1000

function summarize (samples: Float64Array | number[]): LatencySummary {
  const s = Float64Array.from(samples).sort()
  if (s.length === 0) return { count: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 }
  const at = (p: number): number => r3(s[Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))])
  return { count: s.length, p50Ms: at(50), p99Ms: at(99), maxMs: r3(s[s.length - 1]) }
}

/** Per message: the latency of the last receiver, or NaN if some receiver never delivered it. */
function analyse (reports: Report[], published: number): LossCounts & { last: Float64Array, any: number[] } {
  const last = new Float64Array(published)
  const any: number[] = []
  let lostToSome = 0
  let lostDeliveries = 0
  for (let i = 0; i < published; i++) {
    let worst = 0
    let lost = false
    for (const r of reports) {
      const v = r.latency[i]
      if (Number.isNaN(v)) { lost = true; lostDeliveries++ } else {
        any.push(v)
        if (v > worst) worst = v
      }
    }
    if (lost) lostToSome++
    last[i] = lost ? NaN : worst
  }
  return {
    last: last.filter(v => !Number.isNaN(v)),
    any,
    lostToSome,
    lostDeliveries,
    gaps: reports.reduce((a, r) => a + r.gaps, 0),
    gapMessages: reports.reduce((a, r) => a + r.gapMessages, 0),
    duplicates: reports.reduce((a, r) => a + r.channel.duplicates, 0)
  }
}

async function clockSkew (pub: BenchChild, receivers: BenchChild[]): Promise<{ maxSkewMs: number, uncertaintyMs: number }> {
  const offset = async (c: BenchChild): Promise<{ off: number, rtt: number }> => {
    let best = { off: 0, rtt: Infinity }
    for (let i = 0; i < 20; i++) {
      const t0 = performance.timeOrigin + performance.now()
      const { now } = await c.call<{ now: number }>({ type: 'clock' })
      const t1 = performance.timeOrigin + performance.now()
      if (t1 - t0 < best.rtt) best = { off: now - (t0 + t1) / 2, rtt: t1 - t0 }
    }
    return best
  }
  const p = await offset(pub)
  let maxSkewMs = 0
  let uncertaintyMs = 0
  for (const r of receivers) {
    const o = await offset(r)
    maxSkewMs = Math.max(maxSkewMs, Math.abs(o.off - p.off))
    uncertaintyMs = Math.max(uncertaintyMs, (o.rtt + p.rtt) / 2)
  }
  return { maxSkewMs: r3(maxSkewMs), uncertaintyMs: r3(uncertaintyMs) }
}

/** Waits until every receiver has delivered `published` messages, or none has progressed for 3 s (30 s at most). */
async function drain (receivers: BenchChild[], published: number): Promise<void> {
  const hardEnd = performance.now() + 30_000
  let lastTotal = -1
  let lastProgress = performance.now()
  while (performance.now() < hardEnd && performance.now() - lastProgress < 3000) {
    const p = await Promise.all(receivers.map(async r => await r.call<{ delivered: number }>({ type: 'progress' })))
    const total = p.reduce((a, x) => a + x.delivered, 0)
    if (p.every(x => x.delivered >= published)) return
    if (total !== lastTotal) { lastTotal = total; lastProgress = performance.now() }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

async function publish (pub: BenchChild, req: { type: 'publish', [k: string]: unknown }, timeoutMs: number): Promise<Published> {
  const r = await pub.call<Published>(req, timeoutMs)
  if (r.error !== undefined) throw new Error(`publisher: ${r.error}`)
  return r
}


type Opts = Required<Omit<GossipBenchOptions, 'sizes'>>

async function runSize (n: number, o: Opts): Promise<GossipSizeResult> {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-bench-gossip-'))
  const secret = randomBytes(32).toString('hex')
  const env = { RAFTMESH_BENCH_SECRET: secret }
  const common = { clusterName: 'bench-gossip', topic: 'bench', batchBytes: o.batchBytes, batchDelayMs: o.batchDelayMs }
  const children: BenchChild[] = []
  try {
    const loadAverage = Math.round(loadavg()[0] * 100) / 100
    // Every node gets a known port, so all start at once. The others bootstrap
    // from n1 only and dial each other as n1 tells them about one another:
    // with everyone in everyone's bootstrap list, simultaneous dials leave
    // duplicate connections, and now and then a node never learns one peer's
    // subscription.
    const listen: string[] = []
    for (let i = 0; i < n; i++) listen.push(`/ip4/127.0.0.1/tcp/${await freePort()}`)
    const t0 = performance.now()
    for (let i = 1; i <= n; i++) {
      children.push(new BenchChild(`n${i}`, peerScript, { ...common, nodeId: `n${i}`, dataDir: join(dir, `n${i}`), listen: listen[i - 1], bootstrap: i === 1 ? [] : [listen[0]] }, env))
    }
    const pub = children[0]
    const receivers = children.slice(1)
    await Promise.all(children.map(async c => await c.ready))
    const readyMs = Math.round(performance.now() - t0)
    const status = async (): Promise<Status[]> => await Promise.all(children.map(async c => await c.call<Status>({ type: 'status' })))
    let last: Status[] = []
    await waitFor(`all ${n} nodes to see each other as members and channel subscribers`,
      async () => (last = await status()).every(s => s.members === n - 1 && s.channelPeers === n - 1), 30_000, 50)
      .catch(err => { throw new Error(`${(err as Error).message}; members/connections/channel peers/mesh peers per node: ${last.map(s => `${s.members}/${s.connections}/${s.channelPeers}/${s.meshPeers}`).join(' ')}`) })
    const connectMs = Math.round(performance.now() - t0)
    // Gossipsub grafts its mesh on heartbeats (1 s); with flood publishing the publisher sends to every subscriber anyway.
    await waitFor('gossipsub meshes', async () => (await status()).every(s => s.meshPeers === n - 1), 10_000, 100).catch(() => {})
    const meshPeers = (await status()).map(s => s.meshPeers)
    const clock = await clockSkew(pub, receivers)

    const expect = async (phase: number, capacity: number): Promise<void> => {
      await Promise.all(children.map(async c => await c.call({ type: 'expect', phase, capacity: c === pub ? 0 : capacity })))
    }
    /** The receivers' reports, and the trouble seen by every process. */
    const report = async (count: number): Promise<{ reports: Report[], trouble: TroubleCounts }> => {
      const all = await Promise.all(children.map(async c => await c.call<Report>({ type: 'report', count: c === pub ? 0 : count }, 30_000)))
      return {
        reports: all.slice(1),
        trouble: {
          connectionsClosed: all.reduce((a, r) => a + r.connectionsClosed, 0),
          membersFailed: all.reduce((a, r) => a + r.membersFailed, 0),
          loopDelayMaxMs: all.map(r => r.loopDelayMaxMs)
        }
      }
    }
    const cpu = async (): Promise<NodeJS.CpuUsage[]> => await Promise.all(children.map(async c => (await c.call<{ cpu: NodeJS.CpuUsage }>({ type: 'clock' })).cpu))

    // Warm-up: opens every gossipsub stream and warms the JIT.
    await expect(0, 200)
    const w = await publish(pub, { type: 'publish', phase: 0, mode: 'paced', count: 200, intervalMs: 2, size: o.payloadBytes }, 30_000)
    await drain(receivers, w.published)

    // Latency: a steady stream, one message every intervalMs.
    await expect(1, o.messages)
    const lp = await publish(pub, { type: 'publish', phase: 1, mode: 'paced', count: o.messages, intervalMs: o.intervalMs, size: o.payloadBytes }, o.messages * o.intervalMs + 60_000)
    await drain(receivers, lp.published)
    const lr = await report(lp.published)
    const la = analyse(lr.reports, lp.published)
    const { last: _l, any: _a, ...laCounts } = la

    const chunk = Math.min(MAX_BATCH_ITEMS, Math.ceil(o.batchBytes / o.payloadBytes))
    let batchesBefore = lp.channel.batchesSent
    const flood = async (phase: number, window: number | null): Promise<FloodResult> => {
      await expect(phase, o.floodMaxMessages)
      const cpu0 = await cpu()
      const wall0 = performance.now()
      const req = { type: 'publish' as const, phase, mode: 'flood', maxCount: o.floodMaxMessages, seconds: o.floodSeconds, size: o.payloadBytes, chunk, ...(window === null ? {} : { window }) }
      let publishing = true
      const pubP = publish(pub, req, o.floodSeconds * 1000 + 60_000).finally(() => { publishing = false })
      // Flow control: relay the slowest receiver's progress to the publisher as credit.
      while (window !== null && publishing) {
        const p = await Promise.all(receivers.map(async r => await r.call<{ delivered: number }>({ type: 'progress' })))
        pub.post({ type: 'credit', upTo: Math.min(...p.map(x => x.delivered)) + window })
        await new Promise(resolve => setTimeout(resolve, 2))
      }
      const fp = await pubP
      await drain(receivers, fp.published)
      const cpu1 = await cpu()
      const wall = (performance.now() - wall0) / 1000
      const fr = await report(fp.published)
      const fa = analyse(fr.reports, fp.published)
      const lastArrival = Math.max(...fr.reports.map(r => r.lastArrival))
      const seconds = (lastArrival - fp.firstPublish) / 1000
      const publishSeconds = (fp.lastPublish - fp.firstPublish) / 1000
      const batches = fp.channel.batchesSent - batchesBefore
      batchesBefore = fp.channel.batchesSent
      const { last: _fl, any: _fa, ...faCounts } = fa
      return {
        window,
        published: fp.published,
        publishSeconds: r3(publishSeconds),
        publishedPerSecond: Math.round(fp.published / publishSeconds),
        deliveredToAll: fa.last.length,
        seconds: r3(seconds),
        deliveredToAllPerSecond: Math.round(fa.last.length / seconds),
        batchesSent: batches,
        itemsPerBatch: Math.round(fp.published / Math.max(1, batches) * 10) / 10,
        lastNode: summarize(fa.last),
        cpuCores: cpu1.map((c, i) => Math.round((c.user + c.system - cpu0[i].user - cpu0[i].system) / 1e6 / wall * 100) / 100),
        ...faCounts,
        ...fr.trouble
      }
    }
    const sustained = await flood(2, o.window)
    // Last, as it may break connections or even kill a process.
    let overload: FloodResult | OverloadCrash
    try {
      overload = await flood(3, null)
    } catch (err) {
      await new Promise(resolve => setTimeout(resolve, 500))
      const dead = children.filter(c => c.exited)
      if (dead.length === 0) throw err
      overload = { crashed: dead.map(c => ({ node: c.name, exitCode: c.proc.exitCode, error: c.crash })) }
    }

    return {
      processes: n,
      receivers: n - 1,
      loadAverage,
      readyMs,
      connectMs,
      meshPeers,
      clock,
      latency: {
        published: lp.published,
        ratePerSecond: Math.round(1000 / o.intervalMs),
        lastNode: summarize(la.last),
        anyNode: summarize(la.any),
        ...laCounts,
        ...lr.trouble
      },
      sustained,
      overload
    }
  } finally {
    await Promise.all(children.map(async c => { await c.stop() }))
    await rm(dir, { recursive: true, force: true })
  }
}

export async function runGossipBench (opts: GossipBenchOptions = {}): Promise<GossipBenchResult> {
  const o = {
    messages: opts.messages ?? 2000,
    intervalMs: opts.intervalMs ?? 4,
    payloadBytes: opts.payloadBytes ?? 100,
    floodSeconds: opts.floodSeconds ?? 3,
    floodMaxMessages: opts.floodMaxMessages ?? 500_000,
    // The channel's defaults (gossip/channel.ts).
    batchBytes: opts.batchBytes ?? 16 * 1024,
    batchDelayMs: opts.batchDelayMs ?? 5,
    window: 0
  }
  o.window = opts.window ?? 16 * Math.min(MAX_BATCH_ITEMS, Math.ceil(o.batchBytes / o.payloadBytes))
  if (o.payloadBytes < 16) throw new Error('payloadBytes must be at least 16 (timestamp, phase, index)')
  const sizes: GossipSizeResult[] = []
  for (const n of opts.sizes ?? [3, 5]) sizes.push(await runSize(n, o))
  return {
    bench: 'gossip',
    setup: 'one mesh node per process on 127.0.0.1 (libp2p TCP + pre-shared-key private network + noise + yamux + gossipsub, flood publish); n1 publishes, the others receive; the bench process only orchestrates over IPC',
    payloadBytes: o.payloadBytes,
    batching: { batchBytes: o.batchBytes, batchDelayMs: o.batchDelayMs, maxBatchItems: MAX_BATCH_ITEMS, itemsPerFullBatch: Math.min(MAX_BATCH_ITEMS, Math.ceil(o.batchBytes / o.payloadBytes)) },
    sizes
  }
}

export function gossipTable (r: GossipBenchResult): string {
  const lat = (l: LatencySummary): string => `${l.p50Ms} / ${l.p99Ms} / ${l.maxMs}`.padEnd(28)
  const lines = [`gossip channel, ${r.payloadBytes} B payloads       last-node latency ms p50/p99/max  to all/s   lost  gaps  conn lost`]
  for (const s of r.sizes) {
    const l = s.latency
    const row = (name: string, x: { lastNode: LatencySummary, lostToSome: number, gaps: number, connectionsClosed: number }, rate: string): string =>
      `${s.processes} procs, ${name.padEnd(22)} ${lat(x.lastNode)} ${rate.padStart(9)} ${String(x.lostToSome).padStart(6)} ${String(x.gaps).padStart(5)} ${String(x.connectionsClosed).padStart(10)}`
    lines.push(row(`paced ${l.ratePerSecond}/s`, l, ''))
    lines.push(row(`window ${s.sustained.window ?? ''}`, s.sustained, String(s.sustained.deliveredToAllPerSecond)))
    if ('crashed' in s.overload) lines.push(`${s.processes} procs, unthrottled: ${s.overload.crashed.map(c => `${c.node} died (${c.error ?? `exit ${c.exitCode}`})`).join('; ')}`)
    else lines.push(row('unthrottled', s.overload, String(s.overload.deliveredToAllPerSecond)))
  }
  lines.push(`batching: ${r.batching.batchBytes} B or ${r.batching.batchDelayMs} ms (${r.batching.itemsPerFullBatch} payloads per full batch)`)
  return lines.join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await runGossipBench()
  console.log(JSON.stringify(r, null, 2))
  console.error(gossipTable(r))
}
