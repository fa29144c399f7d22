/**
 * The leader's housekeeping of the voter set, as Consul's autopilot does:
 * nodes that ask to join are added as learners; a learner that is alive and
 * caught up is promoted while that keeps an odd number of voters up to
 * `maxVoters`; a voter gone from the mesh for `deadVoterAfterMs` is removed
 * if the voters left still hold a live majority. One change at a time
 * (Raft allows no more), re-checked every round.
 *
 * Rounds run only while there may be work: a learner to watch, a voter
 * missing from the mesh, or a change in flight. With every voter alive and
 * no learner there is none until the mesh or the configuration changes, so
 * the leader sleeps (its rounds were 2 of an idle leader's ~20 wakeups a
 * second) and a membership event, a join request or a new term wakes it.
 */
import type { RaftNode } from '../raft/index.js'
import type { Logger } from '../gossip/logger.js'
import { errorFields } from '../gossip/logger.js'
import type { MeshNode } from '../gossip/node.js'
import type { Clock } from './clock.js'
import type { CommandResult } from './coordination/commands.js'

export const JOIN_METHOD = 'cluster.join'
const ROUND_MS = 500
/** A learner within this many entries of the leader counts as caught up. */
const CAUGHT_UP_ENTRIES = 16

export interface AutopilotOptions {
  readonly nodeId: string
  readonly raft: RaftNode<CommandResult>
  readonly mesh: MeshNode
  readonly clock: Clock
  readonly log: Logger
  readonly maxVoters: number
  readonly deadVoterAfterMs: number
}

export class Autopilot {
  private readonly o: AutopilotOptions
  private readonly downSince = new Map<string, number>()
  private timer: NodeJS.Timeout | null = null
  private changing = false
  private readonly onChange = (): void => { this.follow() }

  constructor (o: AutopilotOptions) {
    this.o = o
    o.raft.on('state', this.onChange)
    for (const ev of ['join', 'leave', 'failed'] as const) o.mesh.membership.on(ev, this.onChange)
    this.follow()
  }

  /** Rounds run only while this node leads (a follower's would wake it twice a second to do nothing) and has work to watch. */
  private follow (): void {
    if (this.o.raft.isLeader && this.timer === null) {
      this.timer = setInterval(() => { void this.round() }, ROUND_MS)
      this.timer.unref()
    } else if (!this.o.raft.isLeader) {
      this.sleep()
    }
  }

  private sleep (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  /** Leader side of a join request: adds `node` as a learner unless it is already a member. */
  async admit (node: string): Promise<void> {
    const { raft, log } = this.o
    try {
      const { config } = raft.status()
      if (config.voters.includes(node) || config.learners.includes(node)) return
      log.info({ node }, 'adding a learner')
      await raft.changeMembership({ type: 'addLearner', node }, { timeoutMs: 5000 })
    } finally {
      // Whatever happened, a learner may now be waiting to be promoted.
      this.follow()
    }
  }

  close (): void {
    this.o.raft.off('state', this.onChange)
    for (const ev of ['join', 'leave', 'failed'] as const) this.o.mesh.membership.off(ev, this.onChange)
    this.sleep()
  }

  /** The next membership change the leader should make, or null. Exposed for tests. */
  nextChange (): { type: 'promoteLearner' | 'removeNode', node: string } | null {
    const { raft, mesh, clock, nodeId, maxVoters, deadVoterAfterMs } = this.o
    const s = raft.status()
    const alive = new Set([nodeId, ...mesh.members().map(m => m.nodeId)])
    const now = clock.monotonic()
    for (const id of [...this.downSince.keys()]) if (alive.has(id) || !s.config.voters.includes(id)) this.downSince.delete(id)
    for (const v of s.config.voters) if (!alive.has(v) && !this.downSince.has(v)) this.downSince.set(v, now)
    const dead = s.config.voters.filter(v => now - (this.downSince.get(v) ?? now) >= deadVoterAfterMs)
    if (dead.length > 0) {
      const remaining = s.config.voters.filter(v => v !== dead[0])
      const live = remaining.filter(v => alive.has(v)).length
      if (live >= Math.floor(remaining.length / 2) + 1) return { type: 'removeNode', node: dead[0] }
    }
    const ready = s.config.learners.filter(l => alive.has(l) && (s.progress[l]?.match ?? 0) >= s.lastIndex - CAUGHT_UP_ENTRIES).sort()
    let target = Math.min(maxVoters, s.config.voters.length + ready.length)
    if (target % 2 === 0) target--
    if (s.config.voters.length < target && ready.length > 0) return { type: 'promoteLearner', node: ready[0] }
    return null
  }

  private async round (): Promise<void> {
    if (this.changing || !this.o.raft.isLeader) return
    const change = this.nextChange()
    if (change === null) {
      if (this.downSince.size === 0 && this.o.raft.status().config.learners.length === 0) this.sleep()
      return
    }
    this.changing = true
    try {
      this.o.log.info(change, 'autopilot membership change')
      await this.o.raft.changeMembership(change, { timeoutMs: 5000 })
    } catch (err) {
      this.o.log.debug({ ...change, ...errorFields(err) }, 'autopilot change not made; will try again')
    } finally {
      this.changing = false
    }
  }
}
