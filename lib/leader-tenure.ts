/**
 * This node's current term as leader, for the leader-side clocks (session
 * keep-alives, queue claims): a new leader knows nothing of what its
 * predecessor heard, so everything it tracks starts over, counted from the
 * moment it took office.
 */
import type { RaftNode, SoftState } from '../raft/index.js'
import type { Clock } from './clock.js'
import type { CommandResult } from './coordination/commands.js'

export class LeaderTenure {
  private term = -1
  /** Monotonic time this node took office in its current term. */
  since = 0

  /** `onTakeOver` runs once per term this node leads, before anything else sees the new term. */
  constructor (raft: RaftNode<CommandResult>, private readonly clock: Clock, private readonly onTakeOver: () => void) {
    raft.on('state', s => { this.update(s) })
    this.update(raft.status())
  }

  /** True while this node leads (as of the last state change it heard). */
  get leading (): boolean {
    return this.term >= 0
  }

  private update (s: Pick<SoftState, 'role' | 'term'>): void {
    if (s.role !== 'leader') {
      this.term = -1
      return
    }
    if (s.term === this.term) return
    this.term = s.term
    this.since = this.clock.monotonic()
    this.onTakeOver()
  }
}
