/**
 * Two rows of the locks bench on raftmesh alone (three Cluster processes),
 * repeated: for comparing two builds side by side and for profiling (the
 * leader's process index is printed on stderr).
 *
 *   node --import tsx bench/probes/lock-holders.ts holders [seconds] [rounds]
 *     16 acquire → release loops on distinct keys spread over the processes: ops/s
 *   node --import tsx bench/probes/lock-holders.ts sequential [count] [rounds]
 *     one loop in the leader's process, then one in a follower's: cycle p50 and p99
 * Each row also gives the whole machine's CPU time per operation (from
 * /proc/stat: user, nice, system, irq, softirq), which moves less than the
 * rates on a shared VM: compare builds by both.
 */
import { readFileSync } from 'node:fs'
import { Latency } from '../latency.js'
import { RaftmeshLockSide } from '../raftmesh-locks.js'

const mode = process.argv[2] ?? 'holders'
if (mode !== 'holders' && mode !== 'sequential') throw new Error('usage: lock-holders.ts holders|sequential [seconds|count] [rounds]')
const size = Number(process.argv[3] ?? (mode === 'holders' ? 8 : 1000))
const rounds = Number(process.argv[4] ?? 2)
const holders = 16

/** Busy CPU ms of the whole machine so far (Linux reports ticks of 10 ms). */
function machineCpuMs (): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  return (f[0] + f[1] + f[2] + f[5] + f[6]) * 10
}

const side = await RaftmeshLockSide.start()
try {
  const concurrent = async (tag: string, s: number): Promise<{ opsPerSecond: number, cpuMsPerOp: number }> => {
    const cpu0 = machineCpuMs()
    const runs = await Promise.all(Array.from({ length: holders }, async (_, k) => await side.cycle(k % 3, { key: `${tag}-${k}`, count: 1_000_000, maxMs: s * 1000, shared: false })))
    const first = Math.min(...runs.map(r => r.requestedAt[0] ?? Infinity))
    const last = Math.max(...runs.map(r => r.releasedAt[r.releasedAt.length - 1] ?? -Infinity))
    const ops = runs.reduce((a, r) => a + r.releasedAt.length, 0)
    return { opsPerSecond: Math.round(ops / ((last - first) / 1000)), cpuMsPerOp: Math.round((machineCpuMs() - cpu0) / ops * 1000) / 1000 }
  }
  const sequential = async (i: number, tag: string): Promise<{ p50Ms: number, p99Ms: number, cpuMsPerOp: number }> => {
    const cpu0 = machineCpuMs()
    const t = await side.cycle(i, { key: tag, count: size, maxMs: 60_000, shared: false })
    const cycles = new Latency()
    t.releasedAt.forEach((r, k) => { cycles.record(r - t.requestedAt[k]) })
    const { count, p50Ms, p99Ms } = cycles.summary()
    return { p50Ms, p99Ms, cpuMsPerOp: Math.round((machineCpuMs() - cpu0) / count * 1000) / 1000 }
  }
  await concurrent('warm', 3)
  const leader = await side.leader()
  console.error(`leader is process ${leader}`)
  for (let i = 0; i < rounds; i++) {
    if (mode === 'holders') console.log(JSON.stringify({ round: i, ...await concurrent(`holder${i}`, size) }))
    else console.log(JSON.stringify({ round: i, leader: await sequential(leader, `seq-l${i}`), follower: await sequential((leader + 1) % 3, `seq-f${i}`) }))
  }
} finally {
  await side.stop()
}
