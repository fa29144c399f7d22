/**
 * Simulated users of the coordination state machine (lib/coordination/,
 * the code that ships): sessions that open and close, take and release
 * locks, enqueue, claim, ack, nack and extend queue items, register tasks,
 * write files; and the leader's own commands (expire a session or a claim,
 * wake a queue, tick a task), all proposed through the driver as leader
 * stamped entries, into the same log as the key-value clients' commands.
 * Their fate does not matter here: what is checked is that every node's
 * coordination state agrees after each entry, through crashes, restarts and
 * snapshots (see SimStateMachine).
 *
 * Each session, and the leader, waits for its command to be decided before
 * it sends the next, as a caller awaiting each call does, so the traffic
 * slows down with the cluster. Commands sent at a fixed rate instead would
 * outrun a seed whose replication carries one entry per round trip (one
 * Append in flight, one entry per Append, 15 ms links: about 60 entries a
 * second): the log would grow faster than it commits, and no Raft could
 * commit a new entry within the liveness bound after the faults stop.
 */
import { encodeEnvelope, LEADER_OPS, stampEntry, type Command } from '../lib/coordination/commands.js'
import type { Prng } from './prng.js'
import type { Scheduler } from './sim-clock.js'
import type { SimNode } from './sim-node.js'

const SESSIONS = ['a/1', 'b/1', 'c/1']
const LOCKS = ['hl7', 'report']
const OWNERS = ['o1', 'o2']
/** Leader stamps start at a plausible wall-clock time. */
const EPOCH = 1_780_000_000_000

export class SimCoordination {
  private readonly seq = new Map<string, number>()
  /** The node incarnation each client's undecided command went to ('' is the leader's own). */
  private readonly waiting = new Map<string, { node: SimNode, incarnation: number }>()
  private lastStamp = EPOCH
  private stopped = false
  proposed = 0
  /** No command is proposed before this simulated time (a lull, so that the group may quiesce). */
  pausedUntil = 0

  constructor (
    private readonly scheduler: Scheduler,
    private readonly rng: Prng,
    private readonly nodes: readonly SimNode[]
  ) {}

  start (): void {
    this.next(this.rng.int(0, 50))
  }

  stop (): void {
    this.stopped = true
  }

  private next (delay: number): void {
    if (!this.stopped) this.scheduler.at(this.scheduler.now + delay, () => { this.act() })
  }

  private act (): void {
    if (this.scheduler.now < this.pausedUntil) {
      this.scheduler.at(this.pausedUntil, () => { if (!this.stopped) this.act() })
      return
    }
    this.next(this.rng.int(2, 30))
    const leader = this.nodes.find(n => n.raft?.isLeader === true)
    if (leader?.raft === undefined || leader.raft === null || leader.sm === null) return
    const cmd = this.command(leader)
    const client = LEADER_OPS.has(cmd.op) ? '' : this.rng.pick(SESSIONS)
    if (this.isWaiting(client)) return
    const s = client === '' ? 0 : (this.seq.get(client) ?? 0) + 1
    if (client !== '') this.seq.set(client, s)
    this.lastStamp = Math.max(this.lastStamp + 1, EPOCH + this.scheduler.now)
    const data = stampEntry(this.lastStamp, encodeEnvelope({ c: client, s, lo: s, cmd }))
    this.proposed++
    const mine = { node: leader, incarnation: leader.incarnation }
    this.waiting.set(client, mine)
    leader.raft.propose(data, { timeoutMs: 600 }).catch(() => {}).finally(() => {
      if (this.waiting.get(client) === mine) this.waiting.delete(client)
    })
  }

  /** A crashed node never answers: its callers stop waiting. */
  private isWaiting (client: string): boolean {
    const w = this.waiting.get(client)
    return w !== undefined && w.node.up && w.node.incarnation === w.incarnation
  }

  /** A random command, aimed at what the leader's applied state holds (claims to ack, tasks to tick). */
  private command (leader: SimNode): Command {
    const r = this.rng
    const coord = (leader.sm as NonNullable<SimNode['sm']>).coordination
    const claims = [...coord.queues.claims()]
    const claim = claims.length > 0 ? r.pick(claims) : null
    const fence = claim?.claim.fence ?? r.int(1, 50)
    const id = claim?.item.id ?? `i${r.int(0, 9)}`
    const roll = r.int(0, 99)
    if (roll < 8) return { op: 'open', node: r.pick(SESSIONS).split('/')[0], ttlMs: 1000 }
    if (roll < 10) return { op: 'close' }
    if (roll < 12) return { op: 'expire', session: r.pick(SESSIONS) }
    if (roll < 22) return { op: 'acquire', kind: 'lock', name: r.pick(LOCKS), owner: r.pick(OWNERS), wait: r.chance(0.7) }
    if (roll < 30) return { op: 'release', kind: 'lock', name: r.pick(LOCKS), owner: r.pick(OWNERS) }
    if (roll < 42) return { op: 'enqueue', queue: 'q', id: r.chance(0.5) ? `i${r.int(0, 9)}` : null, payload: new Uint8Array([r.int(0, 255)]), delayMs: r.pick([0, 0, 20]), maxAttempts: 3 }
    if (roll < 52) return { op: 'claim', queue: 'q', owner: r.pick(OWNERS), visibilityMs: 500, max: r.int(1, 3), wait: r.chance(0.5), maxAttempts: null }
    if (roll < 60) return { op: 'ack', queue: 'q', id, fence }
    if (roll < 64) return { op: 'nack', queue: 'q', id, fence, delayMs: r.pick([0, 10]), error: null }
    if (roll < 66) return { op: 'give-back', queue: 'q', id, fence }
    if (roll < 68) return { op: 'extend', queue: 'q', id, fence, visibilityMs: 500 }
    if (roll < 72) return { op: 'q-expire', queue: 'q', id, fence }
    if (roll < 74) return { op: 'q-wake', queue: 'q' }
    if (roll < 78) return { op: 'task-register', task: 'sweep', spec: r.chance(0.9) ? '["every",100,null,null,"skip"]' : '["every",200,null,null,"skip"]' }
    if (roll < 84) return { op: 'tick', task: 'sweep', scheduledAt: EPOCH + this.scheduler.now + r.int(-50, 50), run: r.chance(0.9), missed: 0 }
    if (roll < 88) {
      const running = coord.schedules.get('sweep')?.running
      return { op: 'task-done', task: 'sweep', fence: running?.fence ?? r.int(1, 50), outcome: 'ok', error: null }
    }
    if (roll < 96) return { op: 'file-put', path: `conf/${r.int(0, 3)}`, data: new Uint8Array(r.int(0, 8)) }
    return { op: 'file-delete', path: `conf/${r.int(0, 3)}` }
  }
}
