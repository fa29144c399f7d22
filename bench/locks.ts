/**
 * `npm run bench -- locks`: the lock workload (bench/lock-workload.ts)
 * against three processes embedding raftmesh's Cluster, then against a
 * 3-member etcd 3.4 cluster used by three `etcd3` client processes, in the
 * same run, with the ratio per row and issue 11's targets.
 *
 * Durability is the same on both sides: etcd fsyncs its WAL, raftmesh's
 * FileLogStore fsyncs its log. Each etcd lock's lease TTL is raftmesh's
 * session TTL (10 s, the library's default).
 */
import { pathToFileURL } from 'node:url'
import { etcdAvailable } from './etcd-cluster.js'
import { EtcdLockSide } from './etcd-locks.js'
import { round2 } from './kv-workload.js'
import { runLockWorkload, type LockSide, type LockWorkloadOptions, type LockWorkloadResult } from './lock-workload.js'
import { RaftmeshLockSide } from './raftmesh-locks.js'

const SESSION_TTL_SECONDS = 10

interface Row {
  row: string
  raftmesh: number | null
  etcd: number | null
  /** raftmesh / etcd. */
  ratio: number | null
  target?: string
  met?: boolean
}

export interface LocksBenchResult {
  bench: 'locks'
  raftmesh: LockWorkloadResult
  etcd: LockWorkloadResult | { skipped: string }
  rows: Row[]
}

async function run (side: LockSide, opts: LockWorkloadOptions): Promise<LockWorkloadResult> {
  try {
    return await runLockWorkload(side, opts)
  } finally {
    await side.stop()
  }
}

function rows (r: LockWorkloadResult, e: LockWorkloadResult | null): Row[] {
  const row = (name: string, pick: (w: LockWorkloadResult) => number | null, target?: { text: string, met: (ratio: number) => boolean }): Row => {
    const a = pick(r)
    const b = e === null ? null : pick(e)
    const ratio = a === null || b === null || b === 0 ? null : round2(a / b)
    const out: Row = { row: name, raftmesh: a, etcd: b, ratio }
    if (target !== undefined && ratio !== null) {
      out.target = target.text
      // The exact quotient, not the printed (rounded) ratio, decides.
      out.met = target.met(a as number / (b as number))
    }
    return out
  }
  const third = { text: '<= 1/3', met: (x: number) => x <= 1 / 3 }
  const fifo = (w: LockWorkloadResult): boolean => w.contended.maxOvertaken <= w.contended.contenders
  return [
    row('sequential from leader p50 ms', w => w.sequentialLeader.p50Ms, third),
    row('sequential from leader p99 ms', w => w.sequentialLeader.p99Ms),
    row('sequential from leader ops/s', w => w.sequentialLeader.perSecond),
    row('sequential from follower p50 ms', w => w.sequentialFollower.p50Ms, third),
    row('sequential from follower p99 ms', w => w.sequentialFollower.p99Ms),
    row('sequential from follower ops/s', w => w.sequentialFollower.perSecond),
    row('16 holders, distinct keys, ops/s', w => w.holders.perSecond, { text: '>= 5', met: x => x >= 5 }),
    row('8 contenders, one key, grants/s', w => w.contended.perSecond, { text: '>= 3, FIFO', met: x => x >= 3 && fifo(r) }),
    row('8 contenders wait p50 ms', w => w.contended.waitP50Ms),
    row('8 contenders wait p99 ms', w => w.contended.waitP99Ms),
    row('8 contenders min grants/contender', w => w.contended.minPerContender),
    row('8 contenders max grants/contender', w => w.contended.maxPerContender),
    row('8 contenders most grants overtaking one wait', w => w.contended.maxOvertaken),
    row('leader SIGKILL -> acquire, median ms', w => w.failoverKill.medianMs, third),
    row('leader SIGSTOP -> acquire, median ms', w => w.failoverPause.medianMs, third),
    row('holder SIGKILL -> granted elsewhere ms', w => w.holderKilledMs),
    row('leader cut off -> panic ms', w => w.panicMs)
  ]
}

export async function runLocksBench (opts: LockWorkloadOptions = {}): Promise<LocksBenchResult> {
  const raftmesh = await run(await RaftmeshLockSide.start(), opts)
  if (!etcdAvailable()) return { bench: 'locks', raftmesh, etcd: { skipped: 'etcd not installed (apt-get install -y etcd-server)' }, rows: rows(raftmesh, null) }
  const etcd = await run(await EtcdLockSide.start(SESSION_TTL_SECONDS), opts)
  return { bench: 'locks', raftmesh, etcd, rows: rows(raftmesh, etcd) }
}

export function locksTable (r: LocksBenchResult): string {
  const cell = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : String(x)).padStart(10)
  const lines = [`${'row'.padEnd(46)} ${'raftmesh'.padStart(10)} ${'etcd'.padStart(10)} ${'ratio'.padStart(10)}  target`]
  for (const x of r.rows) lines.push(`${x.row.padEnd(46)} ${cell(x.raftmesh)} ${cell(x.etcd)} ${cell(x.ratio)}  ${x.target === undefined ? '' : `${x.target} ${x.met === true ? 'met' : 'MISSED'}`}`)
  if ('skipped' in r.etcd) lines.push(`etcd: ${r.etcd.skipped}`)
  for (const w of [r.raftmesh, r.etcd]) {
    if ('target' in w && w.holderLostBeforeKill !== null) lines.push(`${w.target}: the holder had lost the lock before the SIGKILL: ${w.holderLostBeforeKill}`)
  }
  const fk = (w: LockWorkloadResult): string => `SIGKILL ${w.failoverKill.roundsMs.join(', ')}; SIGSTOP ${w.failoverPause.roundsMs.join(', ')}`
  lines.push(`failover rounds ms, raftmesh: ${fk(r.raftmesh)}`)
  if (!('skipped' in r.etcd)) lines.push(`failover rounds ms, etcd: ${fk(r.etcd)}`)
  return lines.join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await runLocksBench()
  console.log(JSON.stringify(r, null, 2))
  console.error(locksTable(r))
}
