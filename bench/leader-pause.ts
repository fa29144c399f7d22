/**
 * `npm run bench -- pause`: how long a SIGSTOPped Raft leader takes to be
 * replaced, for three processes embedding Cluster, at the Cluster's default
 * election timeout and at the previous one (10 ticks), in the same run.
 * A paused leader closes no connection: it is noticed only by silence, so
 * this is the path the election timeout sets (a SIGKILLed leader is
 * noticed at once by its closed connections).
 */
import { ClusterProcesses, machineNow } from '../testkit/cluster-processes.js'

const ROUNDS = 7

export interface PauseRow {
  readonly electionTicks: number
  /** Milliseconds from SIGSTOP of the leader to the first node reporting a new leader. */
  readonly samplesMs: number[]
  readonly medianMs: number
}

async function measure (electionTicks: number): Promise<PauseRow> {
  const p = await ClusterProcesses.start({ nodes: 3, electionTicks })
  const samples: number[] = []
  try {
    for (let k = 0; k < ROUNDS; k++) {
      const leader = await p.leader()
      const at = machineNow()
      const next = p.waitFor(x => x.type === 'leader' && x.leader !== null && x.leader !== p.nodes[leader].id, 30_000, 'a new leader')
      p.pause(leader)
      samples.push(Math.round((await next).at - at))
      await new Promise(resolve => setTimeout(resolve, 1500))
      p.resume(leader)
      await new Promise(resolve => setTimeout(resolve, 2000))
    }
  } finally {
    await p.stop()
  }
  samples.sort((a, b) => a - b)
  return { electionTicks, samplesMs: samples, medianMs: samples[Math.floor(samples.length / 2)] }
}

export async function runPauseBench (): Promise<{ rows: PauseRow[] }> {
  // 6 is the Cluster's default (lib/options.ts), 10 the one it had before.
  return { rows: [await measure(10), await measure(6)] }
}

export function pauseTable (r: { rows: PauseRow[] }): string {
  return ['election ticks (50 ms)  median ms  samples', ...r.rows.map(x => `${String(x.electionTicks).padStart(20)}  ${String(x.medianMs).padStart(9)}  ${x.samplesMs.join(' ')}`)].join('\n')
}
