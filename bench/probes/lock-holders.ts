/**
 * Two rows of the locks bench on raftmesh alone (three Cluster processes),
 * repeated: for comparing two builds side by side and for profiling (the
 * leader's process index is printed on stderr).
 *
 *   node --import tsx bench/probes/lock-holders.ts holders [seconds] [rounds]
 *     16 acquire → release loops on distinct keys spread over the processes: ops/s
 *   node --import tsx bench/probes/lock-holders.ts sequential [count] [rounds]
 *     one loop in the leader's process, then one in a follower's: cycle p50 and p99
 */
import { RaftmeshLockSide } from '../raftmesh-locks.js'

const mode = process.argv[2] ?? 'holders'
if (mode !== 'holders' && mode !== 'sequential') throw new Error('usage: lock-holders.ts holders|sequential [seconds|count] [rounds]')
const size = Number(process.argv[3] ?? (mode === 'holders' ? 8 : 1000))
const rounds = Number(process.argv[4] ?? 2)
const holders = 16

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return Math.round(s[Math.min(s.length - 1, Math.floor(s.length * p))] * 1000) / 1000
}

const side = await RaftmeshLockSide.start()
try {
  const concurrent = async (tag: string, s: number): Promise<number> => {
    const runs = await Promise.all(Array.from({ length: holders }, async (_, k) => await side.cycle(k % 3, { key: `${tag}-${k}`, count: 1_000_000, maxMs: s * 1000, shared: false })))
    const first = Math.min(...runs.map(r => r.requestedAt[0] ?? Infinity))
    const last = Math.max(...runs.map(r => r.releasedAt[r.releasedAt.length - 1] ?? -Infinity))
    return Math.round(runs.reduce((a, r) => a + r.releasedAt.length, 0) / ((last - first) / 1000))
  }
  const sequential = async (i: number, tag: string): Promise<{ p50Ms: number, p99Ms: number }> => {
    const t = await side.cycle(i, { key: tag, count: size, maxMs: 60_000, shared: false })
    const cycles = t.releasedAt.map((r, k) => r - t.requestedAt[k])
    return { p50Ms: pct(cycles, 0.5), p99Ms: pct(cycles, 0.99) }
  }
  await concurrent('warm', 3)
  const leader = await side.leader()
  console.error(`leader is process ${leader}`)
  for (let i = 0; i < rounds; i++) {
    if (mode === 'holders') console.log(JSON.stringify({ round: i, opsPerSecond: await concurrent(`holder${i}`, size) }))
    else console.log(JSON.stringify({ round: i, leader: await sequential(leader, `seq-l${i}`), follower: await sequential((leader + 1) % 3, `seq-f${i}`) }))
  }
} finally {
  await side.stop()
}
