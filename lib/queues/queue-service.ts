/**
 * The node's side of every queue: sends queue commands through the batcher,
 * routes items the log hands to this node's waiting workers, and ends a
 * job's claim locally as soon as the log (or the lease) says it ended.
 */
import { randomBytes } from 'node:crypto'
import type { Logger } from '../../gossip/logger.js'
import { errorFields } from '../../gossip/logger.js'
import type { CommandBatcher } from '../batcher.js'
import type { Clock } from '../clock.js'
import type { CommandResult, SingleCommand } from '../coordination/commands.js'
import type { GrantedItem } from '../coordination/queue-table.js'
import type { CoordinationState } from '../coordination/state.js'
import { ClaimExpiredError, ClusterStoppedError } from '../errors.js'
import type { SessionKeeper } from '../session.js'
import { ClaimedJob } from './job.js'

export type Delivery = (items: GrantedItem[], session: string) => void

export interface QueueServiceOptions {
  readonly state: CoordinationState
  readonly batcher: CommandBatcher
  readonly keeper: SessionKeeper
  readonly clock: Clock
  readonly log: Logger
}

/** How long a command sent while stopping may take before the stop goes on without it. */
export const STOP_TIMEOUT_MS = 3000

function jobKey (queue: string, id: string, fence: bigint | number): string {
  return `${queue}\u0000${id}\u0000${String(fence)}`
}

export class QueueService {
  readonly o: QueueServiceOptions
  private readonly owners = new Map<string, Delivery>()
  private readonly live = new Map<string, ClaimedJob<unknown> & { queue: string }>()
  private readonly stoppers = new Set<() => Promise<void>>()
  private readonly ownerPrefix = randomBytes(4).toString('hex')
  private ownerSeq = 0
  private stopped = false

  constructor (o: QueueServiceOptions) {
    this.o = o
    o.state.queues.on('claimed', e => {
      if (e.session !== o.keeper.session) return
      const deliver = this.owners.get(e.owner)
      if (deliver !== undefined) deliver(e.items, e.session)
      else for (const it of e.items) this.giveBackQuietly(e.queue, e.session, it)
    })
    o.state.queues.on('claim-ended', e => {
      this.live.get(jobKey(e.queue, e.id, e.fence))?.end(new ClaimExpiredError(`the claim of item ${e.id} ended on the log (${e.reason})`))
    })
    o.state.on('restored', () => {
      for (const j of this.live.values()) {
        if (o.state.queues.item(j.queue, j.id)?.claim?.fence !== Number(j.fence)) j.end(new ClaimExpiredError(`the claim of item ${j.id} is no longer on the log`))
      }
    })
    o.keeper.on('lost', ({ session, reason }) => {
      for (const j of this.live.values()) if (j.session === session) j.end(new ClaimExpiredError(`this node's session ended (${reason}); its claims go back to their queues`))
    })
    o.keeper.on('panic', ({ reason }) => {
      for (const j of this.live.values()) j.end(new ClaimExpiredError(`quorum lost: ${reason}`))
    })
  }

  get isStopped (): boolean {
    return this.stopped
  }

  /** A new owner id for one waiting call or worker. */
  newOwner (): string {
    return `${this.ownerPrefix}.${++this.ownerSeq}`
  }

  /** Items the log hands to `owner` go to `deliver` until the returned function is called; after that they are given back. */
  route (owner: string, deliver: Delivery): () => void {
    this.owners.set(owner, deliver)
    return () => { this.owners.delete(owner) }
  }

  /** Applies one queue command as `session`, batched with others sent in the same turn. */
  async submit (session: string, cmd: SingleCommand): Promise<{ result: CommandResult, sentAt: number }> {
    // While the node stops, a give-back that cannot commit (no quorum) must not hold the stop up: the session's end returns the item too.
    return await this.o.batcher.submit(session, cmd, this.stopped ? { timeoutMs: STOP_TIMEOUT_MS } : {})
  }

  /** A job for an item this node claimed, whose visibility runs from `anchoredAt` (when the granting or confirming command was sent). */
  job<T> (queue: string, session: string, item: GrantedItem, payload: T, visibilityMs: number, anchoredAt: number): ClaimedJob<T> {
    const key = jobKey(queue, item.id, item.fence)
    const job = new ClaimedJob<T>({ ...item, payload, session, visibilityMs, anchoredAt }, async cmd => {
      const { result, sentAt } = await this.submit(session, { ...cmd, queue, id: item.id, fence: item.fence } as SingleCommand)
      return { ok: result.ok, message: result.ok ? undefined : result.message, sentAt }
    }, () => this.o.clock.monotonic(), () => this.o.keeper.valid(session), () => { this.live.delete(key) })
    if (!job.ended) this.live.set(key, Object.assign(job as ClaimedJob<unknown>, { queue }))
    // Ended on the log before this job existed (in the same batch of applies).
    if (this.o.state.queues.item(queue, item.id)?.claim?.fence !== item.fence) job.end(new ClaimExpiredError(`the claim of item ${item.id} ended before it was handed out`))
    return job
  }

  /** Returns an item nobody here will work on, first in line and its attempt uncounted. */
  giveBackQuietly (queue: string, session: string, item: GrantedItem): void {
    if (this.o.keeper.session !== session) return
    this.submit(session, { op: 'give-back', queue, id: item.id, fence: item.fence }).catch((err: unknown) => {
      this.o.log.debug({ queue, id: item.id, ...errorFields(err) }, 'give-back not applied; the claim will expire')
    })
  }

  /** Runs at stop, before the session closes (a processor returning its items). */
  onStop (fn: () => Promise<void>): () => void {
    this.stoppers.add(fn)
    return () => { this.stoppers.delete(fn) }
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await Promise.allSettled([...this.stoppers].map(async fn => { await fn() }))
    for (const j of this.live.values()) j.end(new ClusterStoppedError('the cluster node is stopping; its claims go back to their queues'))
  }
}
