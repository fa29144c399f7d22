/**
 * `npm run bench -- cache` and `npm run bench -- events` (issue 13 §4):
 * raftmesh's caches and events against what a Node user would wire up by
 * hand, Redis pub/sub (Debian's redis-server, one client per process and
 * a local Map), with 3 and then 5 processes on this machine, each system
 * back to back in the same run (bench/fanout-peers.ts). Node 1 writes;
 * every other node records when each item reached it, on the machine's
 * monotonic clock, which all processes share. Before the rows, node 1
 * sends `warmupCount` items at the paced rate, not measured.
 *
 * `cache` rows, in this order:
 * - set → visible on all: `pacedCount` sets at one per `intervalMs` (1,000/s);
 *   per set, the time until the last receiver has it (and pooled per node);
 * - invalidation: every receiver holds the keys (loaded, no broadcast);
 *   node 1 deletes them at 1,000/s; the time until the last receiver has
 *   dropped each;
 * - partition: the nodes are cut in two (netns: the packets are dropped;
 *   loopback: raftmesh's fault layer, and no Redis row) for `partitionMs`,
 *   while node 1 and node N each write random keys of a fresh cache at
 *   `1000 / convIntervalMs` sets/s; then healed. Measured: from the heal to
 *   every node holding the same entries, and to every node holding, for
 *   every key, the write that wins last-writer-wins over all writes (by each
 *   system's stamp: hybrid logical clock, node id on ties); lost updates =
 *   keys, summed over nodes, not holding that winner when the wait
 *   (`convWaitMs`) ends;
 * - highest rate with set→all p99 ≤ 20 ms: paced runs of `stepSeconds` (at
 *   least 200 sets) at each of `steps` sets/s, stopping at the first that
 *   misses (p99 over, a set not delivered within `stepWaitMs`, or the writer
 *   unable to keep within 90% of the rate);
 * - flood: `floodCount` sets as fast as set() takes them (no longer than
 *   `sendLimitMs`, as for every writer); sets visible on
 *   every node per second, from the first set to the last arrival anywhere,
 *   if every set reached every node within `floodWaitMs` of the last send
 *   (else what is missing then).
 * The last two push a system past what it keeps up with, so they come last:
 * what they leave queued would otherwise be in the other rows' figures.
 *
 * `events` rows: publish → delivered to every other node's subscriber at
 * 1,000/s, and a flood of `eventFloodCount` events (as the cache's).
 *
 * Flags: --quick, --sizes 3,5, --systems raftmesh,redis, --network netns|loopback
 * (default netns when this process may build namespaces).
 */
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { machineNow } from '../testkit/cluster-node-protocol.js'
import { netnsAvailable } from '../testkit/netns.js'
import { ask, startRaftmeshPeers, startRedisPeers, type FanoutNetwork, type FanoutPeers, type FanoutSystem } from './fanout-peers.js'
import { Latency, type LatencySummary } from './latency.js'
import { convDigest, type ConvTag, type ConvWrite, type ItemKind } from './procs/fanout-peer.js'
import { redisAvailable, redisVersion } from './redis-server.js'
import { waitFor } from './transport.js'

export interface FanoutOptions {
  readonly sizes: readonly number[]
  readonly systems: readonly FanoutSystem[]
  readonly network: FanoutNetwork
  /** Items sent at the paced rate before any row, not measured. */
  readonly warmupCount: number
  readonly pacedCount: number
  readonly intervalMs: number
  readonly floodCount: number
  readonly eventFloodCount: number
  readonly chunk: number
  readonly floodWaitMs: number
  /** A writer stops sending after this long, however many items are left. */
  readonly sendLimitMs: number
  /** Value padding, characters. */
  readonly valueBytes: number
  readonly steps: readonly number[]
  readonly stepSeconds: number
  readonly stepWaitMs: number
  readonly partitionMs: number
  readonly convKeys: number
  readonly convIntervalMs: number
  readonly convWaitMs: number
}

const DEFAULTS: FanoutOptions = {
  sizes: [3, 5],
  systems: ['raftmesh', 'redis'],
  network: 'loopback',
  warmupCount: 1000,
  pacedCount: 2000,
  intervalMs: 1,
  floodCount: 50_000,
  eventFloodCount: 20_000,
  chunk: 500,
  floodWaitMs: 30_000,
  sendLimitMs: 30_000,
  valueBytes: 100,
  steps: [100, 250, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000],
  stepSeconds: 1,
  stepWaitMs: 10_000,
  partitionMs: 5000,
  convKeys: 500,
  convIntervalMs: 5,
  convWaitMs: 30_000
}

const QUICK: Partial<FanoutOptions> = { sizes: [3], sendLimitMs: 10_000, warmupCount: 300, pacedCount: 500, floodCount: 5000, eventFloodCount: 2000, floodWaitMs: 20_000, steps: [250, 1000, 5000, 20_000], stepWaitMs: 5000, convWaitMs: 10_000 }

export interface PacedRow { items: number, perSecond: number, lastNode: LatencySummary, anyNode: LatencySummary, notDelivered: number }
export interface FloodRow { asked: number, items: number, sendSeconds: number, visibleEverywherePerSecond: number, notDelivered: number, waitedMs: number }
export interface StepRow { targetPerSecond: number, perSecond: number, lastNodeP99Ms: number, notDelivered: number, ok: boolean, why: string }
export interface ConvRow { partitionMs: number, writes: number[], keysWritten: number, healToEqualMs: number | null, healToAllWinnersMs: number | null, lostUpdates: number, keysWrongSomewhere: number }

export interface SystemResult {
  system: FanoutSystem
  processes: number
  loadAverageBefore: number
  loadAverageAfter: number
  rows: {
    cacheSet?: PacedRow
    cacheFlood?: FloodRow
    cacheSteps?: { steps: StepRow[], maxPerSecondP99Under20Ms: number }
    invalidation?: PacedRow
    partition?: ConvRow | { skipped: string }
    event?: PacedRow
    eventFlood?: FloodRow
  }
  /** Rows that failed (a peer died), with why; the rows after one are left out. */
  errors: Record<string, string>
  peerStats: unknown[]
}

export interface FanoutResult {
  bench: 'cache' | 'events'
  network: FanoutNetwork
  redis: string
  options: FanoutOptions
  results: Array<SystemResult | { system: FanoutSystem, processes: number, skipped: string }>
}

interface SendReply { sentAt: Float64Array, sent: number, firstSend: number, lastSend: number }
interface Report { delivered: number, lastArrival: number, arrivals: Float64Array, stats: unknown }

const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** Node 1 sends `count` items of `kind`; resolves once every receiver has them all (or `waitMs` passed), with what each saw. */
async function fanout (p: FanoutPeers, phase: string, kind: ItemKind, count: number, send: { mode: 'paced', intervalMs: number } | { mode: 'flood', chunk: number }, o: FanoutOptions, waitMs: number): Promise<{ sent: SendReply, reports: Report[] }> {
  const [writer, ...receivers] = p.children
  await Promise.all(receivers.map(async c => await ask(c, { type: 'expect', phase, kind, capacity: count }, 60_000)))
  const sent = await ask<SendReply>(writer, { type: 'send', phase, kind, count, size: o.valueBytes, limitMs: o.sendLimitMs, ...send }, o.sendLimitMs + 120_000)
  // A receiver busy applying may answer late: that is "not yet", not the end of the wait.
  const progress = async (c: typeof writer): Promise<number> => await ask<{ delivered: number }>(c, { type: 'progress' }, 30_000).then(r => r.delivered, () => -1)
  await waitFor(`${phase}: every item on every node`, async () => (await Promise.all(receivers.map(progress))).every(d => d === sent.sent), waitMs, 100).catch(() => {})
  await sleep(300)
  const reports = await Promise.all(receivers.map(async c => await ask<Report>(c, { type: 'report', count: sent.sent }, 60_000)))
  return { sent, reports }
}

function pacedRow (r: { sent: SendReply, reports: Report[] }): PacedRow {
  const count = r.sent.sent
  const last = new Latency()
  const any = new Latency()
  let notDelivered = 0
  for (let i = 0; i < count; i++) {
    const per = r.reports.map(x => x.arrivals[i] - r.sent.sentAt[i])
    for (const v of per) if (!Number.isNaN(v)) any.record(v)
    if (per.some(v => Number.isNaN(v))) notDelivered++
    else last.record(Math.max(...per))
  }
  const seconds = (r.sent.sentAt[count - 1] - r.sent.sentAt[0]) / 1000
  return { items: count, perSecond: Math.round((count - 1) / seconds), lastNode: last.summary(), anyNode: any.summary(), notDelivered }
}

function floodRow (asked: number, r: { sent: SendReply, reports: Report[] }, waitedMs: number): FloodRow {
  const count = r.sent.sent
  const notDelivered = r.reports.reduce((m, x) => Math.max(m, count - x.delivered), 0)
  const lastArrival = Math.max(...r.reports.map(x => x.lastArrival))
  return {
    asked,
    items: count,
    sendSeconds: round((r.sent.lastSend - r.sent.firstSend) / 1000),
    visibleEverywherePerSecond: notDelivered === 0 ? Math.round(count / ((lastArrival - r.sent.firstSend) / 1000)) : 0,
    notDelivered,
    waitedMs
  }
}

async function steps (p: FanoutPeers, o: FanoutOptions): Promise<{ steps: StepRow[], maxPerSecondP99Under20Ms: number }> {
  const out: StepRow[] = []
  let max = 0
  for (const rate of o.steps) {
    const count = Math.max(200, Math.round(rate * o.stepSeconds))
    const row = pacedRow(await fanout(p, `step${rate}`, 'cache', count, { mode: 'paced', intervalMs: 1000 / rate }, o, o.stepWaitMs))
    const why = row.notDelivered > 0
      ? `${row.notDelivered} not delivered within ${o.stepWaitMs} ms`
      : row.lastNode.p99Ms > 20 ? `p99 ${row.lastNode.p99Ms} ms` : row.perSecond < 0.9 * rate ? `the writer reached ${row.perSecond}/s` : ''
    out.push({ targetPerSecond: rate, perSecond: row.perSecond, lastNodeP99Ms: row.lastNode.p99Ms, notDelivered: row.notDelivered, ok: why === '', why })
    if (why !== '') break
    max = row.perSecond
  }
  return { steps: out, maxPerSecondP99Under20Ms: max }
}

async function partitionRow (p: FanoutPeers, o: FanoutOptions): Promise<ConvRow> {
  const n = p.children.length
  const a = p.children[0]
  const b = p.children[n - 1]
  const sideA = Array.from({ length: Math.ceil(n / 2) }, (_, i) => i)
  const cutAt = machineNow()
  await p.partition([sideA])
  const write = async (c: typeof a): Promise<ConvWrite[]> => (await ask<{ writes: ConvWrite[] }>(c, { type: 'conv-write', phase: 'conv', keys: o.convKeys, intervalMs: o.convIntervalMs, durationMs: o.partitionMs - 300, size: o.valueBytes }, o.partitionMs + 60_000)).writes
  const writing = Promise.all([write(a), write(b)])
  writing.catch(() => {})
  await sleep(Math.max(0, cutAt + o.partitionMs - machineNow()))
  await p.heal()
  const healAt = machineNow()
  const writes = await writing
  // The winner of each key: the greatest stamp over every write, as both systems order them.
  const winner = new Map<string, ConvWrite>()
  const before = (x: ConvWrite['stamp'], y: ConvWrite['stamp']): boolean => x[0] !== y[0] ? x[0] < y[0] : x[1] !== y[1] ? x[1] < y[1] : x[2] < y[2]
  for (const w of writes.flat()) {
    const held = winner.get(w.key)
    if (held === undefined || before(held.stamp, w.stamp)) winner.set(w.key, w)
  }
  const expected = convDigest([...winner.entries()].map(([k, w]) => [k, w.tag]))
  let healToEqualMs: number | null = null
  let healToAllWinnersMs: number | null = null
  const until = healAt + o.convWaitMs
  while (healToAllWinnersMs === null && machineNow() < until) {
    const ds = await Promise.all(p.children.map(async c => await ask<{ digest: string, at: number }>(c, { type: 'conv-digest' }, 30_000).catch(() => null)))
    if (ds.every(d => d !== null)) {
      const at = Math.max(...ds.map(d => d?.at ?? 0)) - healAt
      if (healToEqualMs === null && ds.every(d => d?.digest === ds[0]?.digest)) healToEqualMs = round(at, 1)
      if (ds.every(d => d?.digest === expected)) healToAllWinnersMs = round(at, 1)
    }
    if (healToAllWinnersMs === null) await sleep(50)
  }
  let lostUpdates = 0
  const wrong = new Set<string>()
  for (const c of p.children) {
    const held = new Map((await ask<{ entries: Array<[string, ConvTag]> }>(c, { type: 'conv-contents' }, 30_000)).entries)
    for (const [k, w] of winner) {
      const h = held.get(k)
      if (h === undefined || h.w !== w.tag.w || h.n !== w.tag.n) {
        lostUpdates++
        wrong.add(k)
      }
    }
  }
  return { partitionMs: round(healAt - cutAt, 0), writes: writes.map(w => w.length), keysWritten: winner.size, healToEqualMs, healToAllWinnersMs, lostUpdates, keysWrongSomewhere: wrong.size }
}

async function runSystem (bench: 'cache' | 'events', system: FanoutSystem, n: number, o: FanoutOptions): Promise<SystemResult> {
  const loadAverageBefore = round(loadavg()[0], 2)
  process.stderr.write(`${bench}: ${system}, ${n} processes (load ${loadAverageBefore})\n`)
  const p = system === 'raftmesh' ? await startRaftmeshPeers(n, o.network) : await startRedisPeers(n, o.network)
  const rows: SystemResult['rows'] = {}
  const errors: Record<string, string> = {}
  /** Runs a row; a row that fails (a peer died) is reported in `errors` and leaves the system's remaining rows out. */
  const step = async <T>(name: string, f: () => Promise<T>): Promise<T | undefined> => {
    if (Object.keys(errors).length > 0) return undefined
    const t = performance.now()
    try {
      const r = await f()
      process.stderr.write(`  ${name}: ${Math.round(performance.now() - t)} ms\n`)
      return r
    } catch (err) {
      const crashed = p.children.filter(c => c.exited).map(c => `${c.name} exited${c.crash !== null ? ` (${c.crash})` : ''}`)
      errors[name] = `${String(err)}${crashed.length > 0 ? `; ${crashed.join('; ')}` : ''}`
      process.stderr.write(`  ${name}: failed after ${Math.round(performance.now() - t)} ms: ${errors[name]}\n`)
      return undefined
    }
  }
  try {
    const paced = { mode: 'paced' as const, intervalMs: o.intervalMs }
    const flood = { mode: 'flood' as const, chunk: o.chunk }
    // Not measured: the first items after the start meet cold code and a gossip mesh still forming, in either system.
    await step('warmup', async () => await fanout(p, 'warm', bench === 'cache' ? 'cache' : 'event', o.warmupCount, paced, o, 30_000))
    if (bench === 'cache') {
      rows.cacheSet = await step('cacheSet', async () => pacedRow(await fanout(p, 'paced', 'cache', o.pacedCount, paced, o, 60_000)))
      rows.invalidation = await step('invalidation', async () => pacedRow(await fanout(p, 'inv', 'inv', o.pacedCount, paced, o, 60_000)))
      rows.partition = p.canPartition
        ? await step('partition', async () => await partitionRow(p, o))
        : { skipped: 'needs network namespaces (--network netns, as root): Redis has no fault layer of its own' }
      // The rows that push a system past what it keeps up with come last: what they leave queued would be in the others' figures.
      rows.cacheSteps = await step('cacheSteps', async () => await steps(p, o))
      rows.cacheFlood = await step('cacheFlood', async () => floodRow(o.floodCount, await fanout(p, 'flood', 'cache', o.floodCount, flood, o, o.floodWaitMs), o.floodWaitMs))
    } else {
      rows.event = await step('event', async () => pacedRow(await fanout(p, 'ev', 'event', o.pacedCount, paced, o, 60_000)))
      rows.eventFlood = await step('eventFlood', async () => floodRow(o.eventFloodCount, await fanout(p, 'evflood', 'event', o.eventFloodCount, flood, o, o.floodWaitMs), o.floodWaitMs))
    }
    const peerStats = await Promise.all(p.children.map(async c => await ask<{ stats: unknown }>(c, { type: 'report', count: 0 }).then(r => r.stats, (err: unknown) => String(err))))
    return { system, processes: n, loadAverageBefore, loadAverageAfter: round(loadavg()[0], 2), rows, errors, peerStats }
  } finally {
    await p.stop()
  }
}

export async function parseFanoutArgs (argv: string[]): Promise<FanoutOptions> {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean', default: false }, sizes: { type: 'string' }, systems: { type: 'string' }, network: { type: 'string' } }, allowPositionals: true, strict: false })
  const o: FanoutOptions = { ...DEFAULTS, ...(values.quick === true ? QUICK : {}) }
  const sizes = typeof values.sizes === 'string' ? values.sizes.split(',').map(Number) : o.sizes
  if (sizes.some(s => !Number.isInteger(s) || s < 2 || s > 9)) throw new Error('--sizes must list integers in 2..9, e.g. 3,5')
  const systems = typeof values.systems === 'string' ? values.systems.split(',') : o.systems
  if (systems.some(s => s !== 'raftmesh' && s !== 'redis')) throw new Error('--systems must list raftmesh and/or redis')
  const network = typeof values.network === 'string' ? values.network : (await netnsAvailable() ? 'netns' : 'loopback')
  if (network !== 'netns' && network !== 'loopback') throw new Error('--network must be netns or loopback')
  if (network === 'netns' && !await netnsAvailable()) throw new Error('--network netns needs root and iproute2')
  return { ...o, sizes, systems: systems as FanoutSystem[], network }
}

async function runFanout (bench: 'cache' | 'events', argv: string[]): Promise<FanoutResult> {
  const o = await parseFanoutArgs(argv)
  const results: FanoutResult['results'] = []
  const haveRedis = redisAvailable()
  // Back to back per size, in the same run: the machine's load is as alike for both as it can be made.
  for (const n of o.sizes) {
    for (const system of o.systems) {
      if (system === 'redis' && !haveRedis) results.push({ system, processes: n, skipped: 'redis-server not installed (apt-get install -y redis-server)' })
      else results.push(await runSystem(bench, system, n, o))
    }
  }
  return { bench, network: o.network, redis: haveRedis ? redisVersion() : 'not installed', options: o, results }
}

export async function runCacheBench (argv: string[] = []): Promise<FanoutResult> {
  return await runFanout('cache', argv)
}

export async function runEventsBench (argv: string[] = []): Promise<FanoutResult> {
  return await runFanout('events', argv)
}

function pair (r: PacedRow | undefined): string {
  if (r === undefined) return '-'
  return `${r.lastNode.p50Ms} / ${r.lastNode.p99Ms}${r.notDelivered > 0 ? ` (${r.notDelivered} lost)` : ''}`
}

function ratio (a: number | null | undefined, b: number | null | undefined): string {
  if (a === null || a === undefined || b === null || b === undefined || b === 0 || a === 0) return '-'
  return `${round(a / b, 2)}×`
}

function floodText (x: FloodRow | undefined): string {
  if (x === undefined) return '-'
  const cut = x.items < x.asked ? ` (${x.items} of ${x.asked} sent in ${x.sendSeconds} s)` : ''
  if (x.notDelivered > 0) return `${x.notDelivered} of ${x.items} missing somewhere ${x.waitedMs / 1000} s after the last send${cut}`
  return `${x.visibleEverywherePerSecond}${cut}`
}

function convText (c: ConvRow | { skipped: string } | undefined): string {
  if (c === undefined) return '-'
  if ('skipped' in c) return 'skipped'
  return `equal ${c.healToEqualMs ?? 'never'} / winners ${c.healToAllWinnersMs ?? 'never'} ms, lost ${c.lostUpdates}`
}

/** One line per measure and size: raftmesh, Redis, their ratio, the target. */
export function fanoutTable (r: FanoutResult): string {
  const lines = [`network: ${r.network}; Redis: ${r.redis}`, 'measure | nodes | raftmesh | redis pub/sub | raftmesh ÷ redis | target']
  const sizes = [...new Set(r.results.map(x => x.processes))]
  for (const n of sizes) {
    const get = (s: FanoutSystem): SystemResult | undefined => { const x = r.results.find(y => y.system === s && y.processes === n); return x === undefined || 'skipped' in x ? undefined : x }
    const m = get('raftmesh')
    const d = get('redis')
    const add = (name: string, a: string, b: string, q: string, target: string): void => { lines.push(`${name} | ${n} | ${a} | ${b} | ${q} | ${target}`) }
    const p99 = (x: PacedRow | undefined): number | undefined => x?.lastNode.p99Ms
    const p50 = (x: PacedRow | undefined): number | undefined => x?.lastNode.p50Ms
    const both = (a: PacedRow | undefined, b: PacedRow | undefined): string => `${ratio(p50(a), p50(b))} / ${ratio(p99(a), p99(b))}`
    if (r.bench === 'cache') {
      add('set→all p50 / p99 ms @1,000/s', pair(m?.rows.cacheSet), pair(d?.rows.cacheSet), both(m?.rows.cacheSet, d?.rows.cacheSet), n === 5 ? 'p99 ≤ 5 ms' : '')
      add('flood: sets visible on all /s', floodText(m?.rows.cacheFlood), floodText(d?.rows.cacheFlood), ratio(m?.rows.cacheFlood?.visibleEverywherePerSecond, d?.rows.cacheFlood?.visibleEverywherePerSecond), n === 5 ? '≥ 50,000/s' : '')
      const st = (x: SystemResult | undefined): string => { const s = x?.rows.cacheSteps; if (s === undefined) return '-'; const f = s.steps.find(y => !y.ok); return `${s.maxPerSecondP99Under20Ms}${f !== undefined ? ` (${f.targetPerSecond}/s: ${f.why})` : ''}` }
      add('max sets/s with set→all p99 ≤ 20 ms', st(m), st(d), ratio(m?.rows.cacheSteps?.maxPerSecondP99Under20Ms, d?.rows.cacheSteps?.maxPerSecondP99Under20Ms), '')
      add('invalidate→dropped on all p50 / p99 ms @1,000/s', pair(m?.rows.invalidation), pair(d?.rows.invalidation), both(m?.rows.invalidation, d?.rows.invalidation), '')
      const cv = (x: SystemResult | undefined): ConvRow | undefined => { const c = x?.rows.partition; return c === undefined || 'skipped' in c ? undefined : c }
      add(`after a ${r.options.partitionMs / 1000} s partition: heal → equal / → LWW winners, lost`, convText(m?.rows.partition), convText(d?.rows.partition), ratio(cv(m)?.healToAllWinnersMs, cv(d)?.healToAllWinnersMs), '≤ 2,000 ms, 0 lost')
    } else {
      add('publish→all p50 / p99 ms @1,000/s', pair(m?.rows.event), pair(d?.rows.event), both(m?.rows.event, d?.rows.event), '')
      add('flood: events delivered on all /s', floodText(m?.rows.eventFlood), floodText(d?.rows.eventFlood), ratio(m?.rows.eventFlood?.visibleEverywherePerSecond, d?.rows.eventFlood?.visibleEverywherePerSecond), '')
    }
    const failed = (x: SystemResult | undefined): string => Object.entries(x?.errors ?? {}).map(([k, v]) => `${k}: ${v.split('\n')[0].slice(0, 200)}`).join('; ')
    if (failed(m) !== '' || failed(d) !== '') add('rows failed', failed(m) || '-', failed(d) || '-', '', '')
    const load = (x: SystemResult | undefined): string => x === undefined ? '-' : `${x.loadAverageBefore} → ${x.loadAverageAfter}`
    add('load average (1 min) before → after', load(m), load(d), '', '')
  }
  return lines.join('\n')
}
