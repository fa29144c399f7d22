/**
 * The nemesis of a fault run: a schedule of faults drawn from the run's
 * seed (so a rerun with the same seed injects the same faults in the same
 * order, at the same offsets), applied one at a time to a ClusterProcesses
 * cluster, each followed by a quiet gap so a majority is always up between
 * faults:
 *
 * - kill: SIGKILL, down for a while, restart (optionally with a torn WAL
 *   tail, see torn-tail.ts);
 * - pause: SIGSTOP for a while (sometimes past the session TTL), then
 *   SIGCONT; its workers act once as it resumes, before any timer runs;
 * - partition: the node is cut off from the others, then healed: by the
 *   transport's fault layer on loopback, by the network on netns (see
 *   ClusterProcesses' `network`).
 *
 * The victim is the Raft leader or a follower, as drawn.
 *
 * Beneath them, with `--clock-skew`, every node's clocks and timers run at
 * a rate of their own for the whole run (clockRatesFor): drift, which the
 * session lease's margin must absorb, is a standing condition of a
 * machine, not a window.
 */
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Prng } from '../../sim/prng.js'
import { machineNow, type ClusterProcesses } from '../../testkit/cluster-processes.js'
import { tearWalTail } from './torn-tail.js'

export type FaultKind = 'kill' | 'kill-torn' | 'pause' | 'partition'

export interface PlannedFault {
  readonly kind: FaultKind
  readonly victim: 'leader' | 'follower'
  /** How long the node stays down, paused or cut off. */
  readonly holdMs: number
  /** Quiet time after the fault is lifted. */
  readonly gapMs: number
}

/** A fault as it happened, on the machine-wide time line. */
export interface FaultWindow {
  readonly kind: FaultKind
  readonly node: number
  readonly wasLeader: boolean
  readonly from: number
  readonly to: number
  /** kill-torn: bytes appended to the newest WAL segment. */
  readonly tornBytes?: number
}

export interface NemesisBounds {
  /** Faults are planned to fill this long. */
  readonly durationMs: number
  readonly sessionTtlMs: number
}

const KINDS: readonly FaultKind[] = ['kill', 'kill-torn', 'pause', 'partition']

/**
 * Each node's clock rate for a run with this seed: uniform in
 * [1 - skew, 1 + skew], to the nearest 0.001, with the extremes always
 * present (one node at 1 - skew, another at 1 + skew) so every run has the
 * widest drift the bound allows. skew 0: all 1.
 */
export function clockRatesFor (seed: number, nodes: number, skew: number): number[] {
  if (skew === 0) return new Array<number>(nodes).fill(1)
  const rng = new Prng(seed ^ 0xc10c)
  const rates = Array.from({ length: nodes }, () => Math.round((1 + (rng.next() * 2 - 1) * skew) * 1000) / 1000)
  const slow = rng.int(0, nodes - 1)
  const fast = (slow + rng.int(1, nodes - 1)) % nodes
  rates[slow] = Math.round((1 - skew) * 1000) / 1000
  rates[fast] = Math.round((1 + skew) * 1000) / 1000
  return rates
}

/** The faults a run with this seed injects, in order. */
export function planFaults (seed: number, b: NemesisBounds): PlannedFault[] {
  const rng = new Prng(seed)
  const plan: PlannedFault[] = []
  let total = 0
  while (total < b.durationMs) {
    const kind = rng.pick(KINDS)
    // Pauses straddle the TTL: shorter ones must be survived silently, longer ones must cost the node its session.
    const holdMs = kind === 'pause' ? rng.int(Math.round(b.sessionTtlMs / 2), b.sessionTtlMs * 2) : rng.int(1000, 4000)
    const f: PlannedFault = { kind, victim: rng.chance(0.5) ? 'leader' : 'follower', holdMs, gapMs: rng.int(1500, 3000) }
    plan.push(f)
    total += f.holdMs + f.gapMs
  }
  return plan
}

/**
 * Applies the plan. `rejoin(i)` is called after a killed node restarts,
 * to start its workloads again. Each fault's window is pushed to `windows`
 * as soon as the fault is lifted, so a run that fails half-way still shows
 * the faults it went through.
 */
export async function runNemesis (c: ClusterProcesses, plan: readonly PlannedFault[], seed: number, rejoin: (i: number) => Promise<void>, windows: FaultWindow[]): Promise<void> {
  const rng = new Prng(seed ^ 0x5eed)
  for (const f of plan) {
    const leader = await c.leader(30_000)
    const followers = c.nodes.map(n => n.index).filter(i => i !== leader)
    const node = f.victim === 'leader' ? leader : rng.pick(followers)
    const from = machineNow()
    let tornBytes: number | undefined
    switch (f.kind) {
      case 'kill':
      case 'kill-torn':
        await c.kill(node)
        await sleep(f.holdMs)
        if (f.kind === 'kill-torn') tornBytes = (await tearWalTail(join(c.nodes[node].dataDir, 'raft'), rng))?.bytes
        await c.restart(node)
        await rejoin(node)
        break
      case 'pause': {
        c.pause(node)
        await sleep(f.holdMs)
        const touched = c.touchJobs(node)
        c.resume(node)
        await touched
        break
      }
      case 'partition':
        await c.partition([node])
        await sleep(f.holdMs)
        await c.heal()
        break
    }
    const w: FaultWindow = { kind: f.kind, node, wasLeader: node === leader, from, to: machineNow(), ...(tornBytes === undefined ? {} : { tornBytes }) }
    windows.push(w)
    await sleep(f.gapMs)
  }
}
