/**
 * Five raftmesh cache processes (bench/fanout-peers.ts, loopback by
 * default): 3,000 paced warm-up sets from node 1, a 2 s rest, then COUNT
 * sets paced at one per INTERVAL ms (MODE=paced) or as fast as set() takes
 * them (MODE=flood, the default). Prints the rate until every receiver had
 * every set, each process's CPU (user+system, and system alone) per 1,000
 * sets, set → all p50/p99/max, and the seconds of the run whose sets took
 * over 20 ms (with the slowest). PROF=1 with
 * NODE_OPTIONS="--import <a SIGUSR2 profiler preload>" signals process
 * PIDX (default 2) at the start and end of the measured sets.
 *
 *   MODE=paced COUNT=36000 node --import tsx bench/probes/cache-paced.ts
 */
import { readFileSync } from 'node:fs'
import { ask, startRaftmeshPeers, type FanoutNetwork } from '../fanout-peers.js'
import { Latency } from '../latency.js'

const N = Number(process.env.N ?? 5)
const COUNT = Number(process.env.COUNT ?? 50_000)
const MODE = process.env.MODE ?? 'flood'
const PIDX = Number(process.env.PIDX ?? 2)

/** [user+system, system] CPU ms of a process so far. */
function cpu (pid: number): [number, number] {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return [(Number(f[11]) + Number(f[12])) * 10, Number(f[12]) * 10]
}

interface Sent { sent: number, sentAt: Float64Array }
interface Report { arrivals: Float64Array }

const peers = await startRaftmeshPeers(N, (process.env.NET ?? 'loopback') as FanoutNetwork)
const [writer, ...receivers] = peers.children
try {
  await Promise.all(peers.children.map(async c => await ask(c, { type: 'expect', phase: 'warm', kind: 'cache', capacity: 3000 })))
  await ask(writer, { type: 'send', phase: 'warm', kind: 'cache', mode: 'paced', count: 3000, intervalMs: 1, size: 64, limitMs: 20_000 }, 60_000)
  await new Promise(resolve => setTimeout(resolve, 2000))
  await Promise.all(peers.children.map(async c => await ask(c, { type: 'expect', phase: 'm', kind: 'cache', capacity: COUNT })))
  const pids = peers.children.map(c => c.proc.pid as number)
  const before = pids.map(cpu)
  if (process.env.PROF === '1') process.kill(pids[PIDX], 'SIGUSR2')
  const t0 = performance.now()
  const send = MODE === 'flood'
    ? { type: 'send', phase: 'm', kind: 'cache', mode: 'flood', count: COUNT, chunk: 500, size: 64, limitMs: 30_000 }
    : { type: 'send', phase: 'm', kind: 'cache', mode: 'paced', count: COUNT, intervalMs: Number(process.env.INTERVAL ?? 1), size: 64, limitMs: COUNT * 2 + 10_000 }
  const sent = await ask<Sent>(writer, send, COUNT * 3 + 60_000)
  for (let k = 0; k < 600; k++) {
    const delivered = await Promise.all(receivers.map(async c => (await ask<{ delivered: number }>(c, { type: 'progress' })).delivered))
    if (Math.min(...delivered) >= sent.sent) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  const ms = performance.now() - t0
  if (process.env.PROF === '1') process.kill(pids[PIDX], 'SIGUSR2')
  const after = pids.map(cpu)
  const reports = await Promise.all(receivers.map(async c => await ask<Report>(c, { type: 'report', count: sent.sent })))
  const toAll = new Latency()
  const slow = new Map<number, number>()
  for (let i = 0; i < sent.sent; i++) {
    const ms = Math.max(...reports.map(r => r.arrivals[i] - sent.sentAt[i]))
    toAll.record(ms)
    const second = Math.floor((sent.sentAt[i] - sent.sentAt[0]) / 1000)
    if (ms > 20) slow.set(second, Math.max(slow.get(second) ?? 0, Math.round(ms)))
  }
  const { p50Ms, p99Ms, maxMs } = toAll.summary()
  const perK = (i: number, j: 0 | 1): number => Math.round((after[i][j] - before[i][j]) / sent.sent * 10_000) / 10
  console.log(JSON.stringify({ sent: sent.sent, ms: Math.round(ms), setsPerSecond: Math.round(sent.sent / (ms / 1000)), cpuMsPer1000: pids.map((_, i) => perK(i, 0)), sysMsPer1000: pids.map((_, i) => perK(i, 1)), p50: p50Ms, p99: p99Ms, max: maxMs }))
  console.log('seconds with sets over 20 ms (second: slowest ms)', JSON.stringify([...slow]))
} finally {
  await peers.stop()
}
