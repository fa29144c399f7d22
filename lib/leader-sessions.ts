/**
 * The leader's side of sessions: keep-alives are held in memory, not in the
 * log (no fsync per node per beat), and a session whose keep-alives stopped
 * for its TTL is ended by an `expire` entry. A new leader knows nothing of
 * the keep-alives its predecessor saw, so it counts every session as heard
 * at the moment it took over (etcd's lessor does the same on promotion).
 *
 * A keep-alive is answered only after a ReadIndex round that started after
 * it arrived: the answer proves that no other leader had been elected when
 * it arrived, so every later leader's grace period ends after the holder's
 * own deadline (see SessionKeeper).
 */
import { NotLeaderError } from '../raft/index.js'
import { SessionLostError } from './errors.js'
import { LeaderTenure } from './leader-tenure.js'
import { OwnCommands, type HousekeeperOptions } from './own-commands.js'

/** Keep-alives move every deadline, so the earliest one is looked at again at least this often. */
const MAX_WAIT_MS = 1000
/**
 * How long a keep-alive waits for others to share its leadership round.
 * Nodes send theirs at the same wall-clock instants (SessionKeeper), so one
 * round a beat serves them all, where each took a round (a heartbeat to
 * every follower and back) of its own.
 */
const ROUND_GATHER_MS = 25

export class LeaderSessions {
  private readonly o: HousekeeperOptions
  private readonly tenure: LeaderTenure
  private readonly lastHeard = new Map<string, number>()
  private readonly own: OwnCommands
  /** The round keep-alives are gathering for (see round). */
  private gathering: Promise<void> | null = null

  constructor (o: HousekeeperOptions) {
    this.o = o
    this.own = new OwnCommands({ raft: o.raft, proposer: o.proposer, log: o.log, minGapMs: o.checkEveryMs, maxWaitMs: Math.max(o.checkEveryMs, MAX_WAIT_MS) }, () => this.expire())
    this.tenure = new LeaderTenure(o.raft, o.clock, () => { this.lastHeard.clear(); this.own.clear() })
    o.state.on('session-opened', s => { this.lastHeard.set(s.id, o.clock.monotonic()) })
    o.state.on('session-ended', e => { this.lastHeard.delete(e.session) })
    o.state.on('restored', () => { this.lastHeard.clear() })
  }

  /** Confirms `session` is alive as of the moment this was called; throws NotLeaderError or SessionLostError. */
  async keepAlive (session: string, opts: { timeoutMs: number }): Promise<void> {
    const at = this.o.clock.monotonic()
    const { raft, state } = this.o
    if (!raft.isLeader) throw new NotLeaderError(raft.leader)
    const term = raft.status().term
    await this.round(opts.timeoutMs)
    if (!raft.isLeader || raft.status().term !== term) throw new NotLeaderError(raft.leader)
    if (state.session(session) === undefined) throw new SessionLostError(`session ${session} is not open`)
    this.lastHeard.set(session, Math.max(this.lastHeard.get(session) ?? 0, at))
  }

  close (): void {
    this.own.close()
  }

  /**
   * A ReadIndex round shared by the keep-alives that arrive within
   * ROUND_GATHER_MS of the first: it starts after the last of them arrived,
   * so it confirms the leadership at each one's arrival.
   */
  private async round (timeoutMs: number): Promise<void> {
    this.gathering ??= new Promise<void>(resolve => { setTimeout(resolve, ROUND_GATHER_MS) }).then(async () => {
      this.gathering = null
      await this.o.raft.readBarrier({ timeoutMs })
    })
    await this.gathering
  }

  /** Expires the sessions silent for their TTL; returns the ms until the next could be. */
  private expire (): number {
    const { raft, state, clock, log } = this.o
    if (!raft.isLeader || !this.tenure.leading) return Infinity
    const now = clock.monotonic()
    let next = Infinity
    for (const s of state.sessionList()) {
      if (this.own.has(s.id)) continue
      const heard = Math.max(this.tenure.since, this.lastHeard.get(s.id) ?? 0)
      const left = heard + s.ttlMs - now
      if (left >= 0) {
        next = Math.min(next, left + 1)
        continue
      }
      log.info({ session: s.id, node: s.node, silentMs: Math.round(now - heard) }, 'session expired')
      this.own.propose(s.id, { op: 'expire', session: s.id })
    }
    return next
  }
}
