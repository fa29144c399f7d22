/**
 * raftmesh's half of `npm run bench -- locks`: three processes that each
 * embed one Cluster as a server would (testkit/cluster-processes.ts), with
 * the library's default session TTL and panic delay.
 */
import { ClusterProcesses, machineNow, type CycleTimes, type HistoryEntry } from '../testkit/cluster-processes.js'
import type { CycleRequest, LockSide } from './lock-workload.js'

export class RaftmeshLockSide implements LockSide {
  readonly name = 'raftmesh Cluster (3 processes)'

  private constructor (private readonly procs: ClusterProcesses) {}

  static async start (): Promise<RaftmeshLockSide> {
    // 'report': a panicked node stays up (a server's own handler), so the panic row can be repeated.
    const side = new RaftmeshLockSide(await ClusterProcesses.start({ nodes: 3, onPanic: 'report' }))
    await side.whole()
    return side
  }

  async leader (): Promise<number> {
    return await this.procs.leader()
  }

  async cycle (i: number, r: CycleRequest): Promise<CycleTimes> {
    return await this.procs.cycle(i, { lock: r.key, count: r.count, durationMs: r.maxMs })
  }

  /** Resolves when process `node` reports a grant of `lock`; starts listening at once, so call it before the grant can happen. */
  private granted (node: number, lock: string, timeoutMs: number): Promise<HistoryEntry> {
    return this.procs.waitFor(e => e.node === node && e.type === 'granted' && e.lock === lock, timeoutMs, `grant of ${lock} on node ${node + 1}`)
  }

  async failover (signal: 'SIGKILL' | 'SIGSTOP', round: number): Promise<number> {
    const l = await this.leader()
    const survivor = (l + 1) % 3
    const lock = `failover-${signal}-${round}`
    const granted = this.granted(survivor, lock, 30_000)
    const at = machineNow()
    const gone = signal === 'SIGKILL' ? this.procs.kill(l) : Promise.resolve(this.procs.pause(l))
    // One acquire, as a server calls it: the library re-sends it to the next leader.
    await this.procs.startWorkload(survivor, { lock, holdMs: 0, count: 1, acquireTimeoutMs: 30_000 })
    const { at: grantedAt } = await granted
    await gone
    if (signal === 'SIGKILL') await this.procs.restart(l)
    else this.procs.resume(l)
    await this.whole()
    return grantedAt - at
  }

  async holderKilled (): Promise<{ ms: number, lostBeforeKill: string | null }> {
    const l = await this.leader()
    const holder = (l + 1) % 3
    const waiter = (l + 2) % 3
    const lock = 'holder-killed'
    const held = this.granted(holder, lock, 30_000)
    await this.procs.startWorkload(holder, { lock, holdMs: 120_000, count: 1 })
    await held
    const granted = this.granted(waiter, lock, 60_000)
    await this.procs.startWorkload(waiter, { lock, holdMs: 0, count: 1, acquireTimeoutMs: 60_000 })
    // The same head start as etcd's waiter gets.
    await new Promise(resolve => setTimeout(resolve, 500))
    const at = machineNow()
    const gone = this.procs.kill(holder)
    const { at: grantedAt } = await granted
    await gone
    const lost = this.procs.history.find(e => e.node === holder && e.type === 'lost' && e.lock === lock && e.at < at)
    await this.procs.restart(holder)
    await this.whole()
    return { ms: grantedAt - at, lostBeforeKill: lost?.type === 'lost' ? `${lost.reason} (${Math.round(at - lost.at)} ms before the kill)` : null }
  }

  async panic (): Promise<number> {
    const l = await this.leader()
    const others = [0, 1, 2].filter(i => i !== l)
    const panicked = this.procs.waitFor(e => e.node === l && e.type === 'panic', 60_000, `panic on node ${l + 1}`)
    const at = machineNow()
    for (const i of others) this.procs.pause(i)
    const { at: panicAt } = await panicked
    for (const i of others) this.procs.resume(i)
    await this.whole()
    return panicAt - at
  }

  /** Every node runs, agrees on the leader, holds a session and is not in panic. */
  private async whole (timeoutMs = 60_000): Promise<void> {
    const until = Date.now() + timeoutMs
    for (;;) {
      try {
        await this.procs.leader(Math.max(1, until - Date.now()))
        const s = await Promise.all([0, 1, 2].map(async i => await this.procs.status(i)))
        if (s.every(x => x.session.id !== null && x.panic === null)) return
      } catch (err) {
        if (Date.now() > until) throw err
      }
      if (Date.now() > until) throw new Error(`raftmesh: not whole again within ${timeoutMs} ms`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  async stop (): Promise<void> {
    await this.procs.stop()
  }
}
