/**
 * The faults `npm start` injects into its clinic servers, on a schedule or
 * from the keyboard, one at a time: SIGKILL the Raft leader, restart the
 * nodes that are down, SIGSTOP the leader or a follower and SIGCONT them,
 * and cut the leader off from the others and heal (when the nodes run in
 * network namespaces). Failover is timed from the fault until a surviving
 * node reports a new leader in its status.
 */
import type { ClusterStatus } from '../../lib/index.js'
import type { ClinicProcesses } from '../../testkit/clinic-processes.js'
import type { NetnsLab } from '../../testkit/netns.js'

export interface Failover { readonly fault: 'SIGKILL' | 'SIGSTOP' | 'partition', readonly victim: string, readonly ms: number | null }

export const PARTITION_UNAVAILABLE = 'partition: needs network namespaces (root)'

export class Faults {
  readonly failovers: Failover[] = []
  private queue: Promise<void> = Promise.resolve()

  private cut = false

  /** `lab`: the namespaces the nodes run in (node i in host i), or null when partitions are unavailable. */
  constructor (private readonly procs: ClinicProcesses, readonly note: (line: string) => void, private readonly lab: NetnsLab | null) {}

  /** Runs `fn` after every fault already asked for, so a keypress and the schedule never interleave. */
  async serial (fn: () => Promise<void>): Promise<void> {
    const run = this.queue.then(fn).catch((err: unknown) => { this.note(`fault failed: ${(err as Error).message}`) })
    this.queue = run
    await run
  }

  async statuses (): Promise<Array<ClusterStatus | null>> {
    return await Promise.all(this.procs.nodes.map(async n => await this.procs.status(n.index)))
  }

  /** The index of the node the live nodes name as leader, or null when none does. */
  async leader (): Promise<number | null> {
    for (const s of await this.statuses()) {
      const i = this.procs.nodes.findIndex(n => n.id === s?.raft.leader)
      if (i >= 0 && this.procs.nodes[i].proc !== null && !this.procs.nodes[i].paused) return i
    }
    return null
  }

  private async follower (): Promise<number | null> {
    const leader = await this.leader()
    const up = this.procs.nodes.filter(n => n.proc !== null && !n.paused && n.index !== leader)
    return up.length === 0 ? null : up[Math.floor(Math.random() * up.length)].index
  }

  /** Milliseconds from `since` until a node other than `victim` reports a leader other than `victim`; null after 15 s. */
  private async newLeader (victim: number, since: number): Promise<number | null> {
    const id = this.procs.nodes[victim].id
    // The victim is not asked: cut off, its status call would hold every poll for the call's whole timeout.
    const others = this.procs.nodes.filter(n => n.index !== victim)
    while (Date.now() - since < 15_000) {
      const seen = (await Promise.all(others.map(async n => await this.procs.status(n.index)))).some(s => s !== null && s.raft.leader !== null && s.raft.leader !== id)
      if (seen) return Date.now() - since
      await new Promise(resolve => setTimeout(resolve, 25))
    }
    return null
  }

  async killLeader (): Promise<void> {
    const victim = await this.leader()
    if (victim === null) { this.note('kill: no leader to kill right now'); return }
    const id = this.procs.nodes[victim].id
    const at = Date.now()
    this.note(`SIGKILL ${id}, the leader`)
    await this.procs.kill(victim)
    if (this.procs.nodes.length < 3) return
    const ms = await this.newLeader(victim, at)
    this.failovers.push({ fault: 'SIGKILL', victim: id, ms })
    this.note(ms === null ? `no new leader within 15 s of killing ${id}` : `new leader ${ms} ms after ${id} was killed`)
  }

  /** How many nodes are down. */
  down (): number { return this.procs.nodes.filter(n => n.proc === null).length }

  /**
   * Makes the cluster whole: heals a partition, resumes paused nodes, and
   * restarts nodes that are down until every node answers /health/ready (a
   * node that panicked answers 503 until it has exited, and is then
   * restarted). False if that did not happen within `ms`.
   */
  async whole (ms: number): Promise<boolean> {
    const end = Date.now() + ms
    if (this.cut) await this.heal()
    if (this.procs.nodes.some(n => n.paused)) this.resumeAll()
    while (Date.now() < end) {
      if (this.down() > 0) await this.restartDown()
      const ready = await Promise.all(this.procs.nodes.map(async n => {
        if (n.proc === null || n.paused) return false
        const res = await fetch(`${n.http}/health/ready`, { signal: AbortSignal.timeout(1000) }).catch(() => null)
        return res?.status === 200
      }))
      if (ready.every(Boolean)) return true
      await new Promise(resolve => setTimeout(resolve, 250))
    }
    return false
  }

  async restartDown (): Promise<void> {
    const down = this.procs.nodes.filter(n => n.proc === null)
    if (down.length === 0) { this.note('restart: every node is running'); return }
    await Promise.all(down.map(async n => {
      const at = Date.now()
      this.note(`restarting ${n.id} from its data directory`)
      await this.procs.restart(n.index)
      this.note(`${n.id} is back and ready, ${Date.now() - at} ms after its restart (process startup included)`)
    }))
  }

  /** SIGSTOPs the leader and, on a schedule, SIGCONTs it `resumeAfterMs` after a new leader was seen. */
  async pauseLeader (resumeAfterMs?: number): Promise<number | null> {
    const victim = await this.leader()
    if (victim === null) { this.note('pause: no leader to pause right now'); return null }
    const id = this.procs.nodes[victim].id
    const at = Date.now()
    this.note(`SIGSTOP ${id}, the leader`)
    this.procs.pause(victim)
    // Without three nodes there is no majority left to elect another leader.
    const ms = this.procs.nodes.length < 3 ? undefined : await this.newLeader(victim, at)
    if (ms !== undefined) {
      this.failovers.push({ fault: 'SIGSTOP', victim: id, ms })
      this.note(ms === null ? `no new leader within 15 s of freezing ${id}` : `new leader ${ms} ms after ${id} froze`)
    }
    if (resumeAfterMs !== undefined) {
      await new Promise(resolve => setTimeout(resolve, ms == null ? 1000 : resumeAfterMs))
      this.procs.resume(victim)
      this.note(`SIGCONT ${id}, ${Date.now() - at} ms after it froze`)
    }
    return victim
  }

  async pauseFollower (): Promise<number | null> {
    const victim = await this.follower()
    if (victim === null) { this.note('pause: no follower is up'); return null }
    this.note(`SIGSTOP ${this.procs.nodes[victim].id}, a follower`)
    this.procs.pause(victim)
    return victim
  }

  /** Waits up to `ms` for node `i` to go down (a node resumed after a freeze longer than panicAfterMs panics and exits). */
  async exitWithin (i: number, ms: number): Promise<boolean> {
    const end = Date.now() + ms
    while (this.procs.nodes[i].proc !== null && Date.now() < end) await new Promise(resolve => setTimeout(resolve, 100))
    return this.procs.nodes[i].proc === null
  }

  resumeAll (): void {
    const paused = this.procs.nodes.filter(n => n.paused)
    if (paused.length === 0) { this.note('resume: nothing is paused'); return }
    for (const n of paused) {
      this.procs.resume(n.index)
      this.note(`SIGCONT ${n.id}`)
    }
  }

  /** Cuts the leader off from the other nodes (and from this process, whose link stays with the majority); returns it. */
  async partition (): Promise<number | null> {
    if (this.lab === null) { this.note(PARTITION_UNAVAILABLE); return null }
    const victim = await this.leader()
    if (victim === null) { this.note('partition: no leader to cut off right now'); return null }
    const id = this.procs.nodes[victim].id
    const at = Date.now()
    await this.lab.partition([this.procs.nodes.map(n => n.index).filter(i => i !== victim), [victim]])
    this.cut = true
    this.note(`partition: ${id}, the leader, cut off from the others`)
    if (this.procs.nodes.length < 3) return victim
    const ms = await this.newLeader(victim, at)
    this.failovers.push({ fault: 'partition', victim: id, ms })
    this.note(ms === null ? `no new leader within 15 s of cutting ${id} off` : `new leader ${ms} ms after ${id} was cut off`)
    return victim
  }

  get canPartition (): boolean { return this.lab !== null }

  async heal (): Promise<void> {
    if (this.lab === null) { this.note(PARTITION_UNAVAILABLE); return }
    if (!this.cut) { this.note('heal: there is no partition'); return }
    await this.lab.heal()
    this.cut = false
    this.note('heal: every node reaches every other again')
  }
}
