/**
 * The leader's side of queue claims: each claim's visibility runs on the
 * leader's monotonic clock from the moment the leader applied the entry
 * that granted or extended it, and a claim whose visibility passed is ended
 * by a `q-expire` entry. The claimer anchors its own deadline at the moment
 * it SENT that command, which is earlier, so its signal fires first (see
 * Job). A new leader knows nothing of its predecessor's clock, so it counts
 * every claim as heard when it took over.
 *
 * The same loop wakes queues whose delayed items fell due while workers
 * wait (`q-wake`), since no other entry might touch them.
 */
import type { Claim } from '../coordination/queue-table.js'
import { LeaderTenure } from '../leader-tenure.js'
import { OwnCommands, type HousekeeperOptions } from '../own-commands.js'

/** A claim's deadline only moves later (extensions), so this is a safety net, not the clock. */
const MAX_WAIT_MS = 1000

export class LeaderClaims {
  private readonly o: HousekeeperOptions
  private readonly tenure: LeaderTenure
  /** When the leader last heard each claim; keyed by the claim itself, so an acked item's entry goes with it. */
  private heard = new WeakMap<Readonly<Claim>, number>()
  private readonly own: OwnCommands

  constructor (o: HousekeeperOptions) {
    this.o = o
    this.own = new OwnCommands({ raft: o.raft, proposer: o.proposer, log: o.log, minGapMs: o.checkEveryMs, maxWaitMs: Math.max(o.checkEveryMs, MAX_WAIT_MS) }, () => this.check())
    this.tenure = new LeaderTenure(o.raft, o.clock, () => { this.heard = new WeakMap(); this.own.clear() })
    // A node that does not lead counts every claim from when it takes office, so it need not time them now.
    o.state.queues.on('claim-heard', claim => { if (this.tenure.leading) this.heard.set(claim, o.clock.monotonic()) })
    o.state.on('restored', () => { this.heard = new WeakMap() })
  }

  close (): void {
    this.own.close()
  }

  /** Expires the claims past their visibility and wakes due queues; returns the ms until the next such moment. */
  private check (): number {
    const { raft, state, clock } = this.o
    if (!raft.isLeader || !this.tenure.leading) return Infinity
    const now = clock.monotonic()
    let next = Infinity
    for (const { queue, item, claim } of state.queues.claims()) {
      const heard = Math.max(this.tenure.since, this.heard.get(claim) ?? 0)
      const left = heard + claim.visibilityMs - now
      if (left >= 0) {
        next = Math.min(next, left + 1)
        continue
      }
      this.own.propose(`${queue}\u0000${item.id}\u0000${claim.fence}`, { op: 'q-expire', queue, id: item.id, fence: claim.fence })
    }
    const wall = clock.wall()
    for (const queue of state.queues.dueQueues(wall)) this.own.propose(`wake\u0000${queue}`, { op: 'q-wake', queue })
    const due = state.queues.nextDue()
    if (due !== null && due > wall) next = Math.min(next, due - wall)
    return next
  }
}
