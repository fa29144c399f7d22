/**
 * `cluster.queue<T>(name)`: a durable queue on the coordination log.
 *
 * An enqueue resolves once it is committed and applied on this node, so it
 * survives the loss of any minority of nodes. Each item is claimed by one
 * worker at a time, fenced, with a visibility timeout; an item whose claim
 * expires or whose claimer's session ends goes back to the queue, and after
 * `maxAttempts` claims to the dead letters.
 */
import { Packr } from 'msgpackr'
import { MAX_QUEUE_PAYLOAD_BYTES, type CommandResult } from '../coordination/commands.js'
import type { DeadLetter, GrantedItem } from '../coordination/queue-table.js'
import type { CoordinationState } from '../coordination/state.js'
import { ClusterStoppedError, InvalidArgumentError, QueueFullError, QueueItemTooLargeError, SessionLostError, TimeoutError } from '../errors.js'
import { LEASE_MARGIN } from '../session.js'
import type { Job } from './job.js'
import { Processor, type ProcessOptions } from './processor.js'
import type { QueueService } from './queue-service.js'

const packr = new Packr({ useRecords: false, moreTypes: false })
const DEFAULT_VISIBILITY_MS = 30_000

export interface QueueOptions {
  /** Claims an item may have before it goes to the dead letters (default 5). */
  readonly maxAttempts?: number
}

export interface EnqueueOptions {
  /** Makes the enqueue idempotent: an item with this id that is still queued, claimed or dead-lettered is not added again. */
  readonly id?: string
  /** Not claimable before this delay passes (leader-stamped time). */
  readonly delayMs?: number
  readonly signal?: AbortSignal
  readonly timeoutMs?: number
}

export interface ClaimOptions {
  /** How long the claim lasts unless extended (default 30 s). */
  readonly visibilityMs?: number
  readonly signal?: AbortSignal
  /** Give up waiting for an item after this long (TimeoutError). Default: wait until `signal` aborts. */
  readonly timeoutMs?: number
}

export interface QueueStats {
  /** Items not claimed: ready plus delayed. */
  readonly depth: number
  readonly ready: number
  readonly delayed: number
  readonly inFlight: number
  readonly deadLetters: number
  /** Items workers are waiting for. */
  readonly waiting: number
  readonly acked: number
  /** Age of the oldest ready item (leader-stamped enqueue time to now), or null. */
  readonly oldestAgeMs: number | null
}

export interface DeadItem<T> {
  readonly id: string
  readonly payload: T
  readonly enqueuedAt: number
  readonly deadAt: number
  readonly attempts: number
  readonly lastError: string | null
}

export class Queue<T> {
  readonly name: string
  private readonly svc: QueueService
  private readonly maxAttempts: number

  constructor (svc: QueueService, name: string, opts: QueueOptions = {}) {
    this.svc = svc
    this.name = name
    this.maxAttempts = opts.maxAttempts ?? 5
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1 || this.maxAttempts > 1000) throw new InvalidArgumentError('maxAttempts must be an integer in 1..1000')
  }

  /** Adds an item; resolves once it is committed and applied here. */
  async enqueue (payload: T, opts: EnqueueOptions = {}): Promise<{ id: string, duplicate: boolean }> {
    const delayMs = opts.delayMs ?? 0
    if (!Number.isFinite(delayMs) || delayMs < 0) throw new InvalidArgumentError('delayMs must be a non-negative number')
    if (opts.id !== undefined && (typeof opts.id !== 'string' || opts.id.length === 0 || opts.id.length > 128)) throw new InvalidArgumentError('an item id must be a string of 1-128 characters')
    const bytes = packr.pack(payload)
    if (bytes.byteLength > MAX_QUEUE_PAYLOAD_BYTES) throw new QueueItemTooLargeError(`payload of ${bytes.byteLength} bytes exceeds ${MAX_QUEUE_PAYLOAD_BYTES} bytes`)
    const value = await this.send(opts, () => ({ op: 'enqueue', queue: this.name, id: opts.id ?? null, payload: bytes, delayMs: Math.round(delayMs), maxAttempts: this.maxAttempts }))
    return value as { id: string, duplicate: boolean }
  }

  /** Claims the next item, waiting for one (FIFO among waiting workers) until `timeoutMs` or `signal`. */
  async claim (opts: ClaimOptions = {}): Promise<Job<T>> {
    const job = await this.claimOne(opts, true)
    if (job === null) throw new TimeoutError(`no item of queue ${this.name} was claimed`)
    return job
  }

  /** Claims the next ready item, or resolves null if there is none now. */
  async tryClaim (opts: Omit<ClaimOptions, 'timeoutMs'> = {}): Promise<Job<T> | null> {
    return await this.claimOne(opts, false)
  }

  /**
   * Runs `fn` on items, up to `concurrency` at once, never claiming more
   * than it has free slots: acks when `fn` resolves, nacks (with backoff)
   * when it throws, extends the claim while `fn` runs. Stop it with the
   * returned processor's `stop()`, which gives its unfinished items back.
   */
  process (fn: (job: Job<T>) => Promise<void>, opts: ProcessOptions = {}): Processor<T> {
    if (this.svc.isStopped) throw new ClusterStoppedError()
    return new Processor<T>(this.svc, this.name, p => this.decode(p), fn, opts)
  }

  /** This node's view (applied entries) of the queue. */
  async stats (): Promise<QueueStats> {
    return queueStats(this.svc.o.state, this.name, this.svc.o.clock.wall())
  }

  async deadLetters (): Promise<Array<DeadItem<T>>> {
    return this.svc.o.state.queues.deadLetters(this.name).map((d: DeadLetter) => ({ ...d, payload: this.decode(d.payload) }))
  }

  /** Puts dead letters (all, or the listed ids) back in the queue with fresh attempts. */
  async requeueDead (ids?: string[]): Promise<number> {
    return ((await this.send({}, () => ({ op: 'requeue-dead', queue: this.name, ids: ids ?? null }))) as { count: number }).count
  }

  /** Deletes dead letters (all, or the listed ids). */
  async purgeDead (ids?: string[]): Promise<number> {
    return ((await this.send({}, () => ({ op: 'purge-dead', queue: this.name, ids: ids ?? null }))) as { count: number }).count
  }

  private decode (payload: Uint8Array): T {
    return packr.unpack(payload) as T
  }

  /** Sends a command under this node's session, opening a new one if it ended on the way. */
  private async send (opts: { signal?: AbortSignal, timeoutMs?: number }, make: () => Parameters<QueueService['submit']>[1]): Promise<unknown> {
    const { keeper } = this.svc.o
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs
    for (;;) {
      if (this.svc.isStopped) throw new ClusterStoppedError()
      opts.signal?.throwIfAborted()
      if (Date.now() > deadline) throw new TimeoutError(`queue ${this.name}: not applied within ${opts.timeoutMs} ms; its outcome is unknown`)
      const session = await keeper.ensure({ signal: opts.signal })
      const { result } = await this.svc.submit(session, make())
      if (result.ok) return result.value
      if (result.error === 'no-session') continue
      throw resultError(result)
    }
  }

  private async claimOne (opts: ClaimOptions, wait: boolean): Promise<Job<T> | null> {
    const visibilityMs = opts.visibilityMs ?? DEFAULT_VISIBILITY_MS
    if (!Number.isInteger(visibilityMs) || visibilityMs < 100 || visibilityMs > 24 * 3600_000) throw new InvalidArgumentError('visibilityMs must be an integer from 100 ms to a day')
    const { keeper } = this.svc.o
    const timeout = new AbortController()
    const timer = opts.timeoutMs === undefined ? null : setTimeout(() => { timeout.abort(new TimeoutError(`no item of queue ${this.name} within ${opts.timeoutMs} ms`)) }, opts.timeoutMs)
    const signal = opts.signal === undefined ? timeout.signal : AbortSignal.any([opts.signal, timeout.signal])
    try {
      for (;;) {
        if (this.svc.isStopped) throw new ClusterStoppedError()
        const session = await keeper.ensure({ signal })
        const owner = this.svc.newOwner()
        let arrived: (items: GrantedItem[]) => void = () => {}
        const granted = new Promise<GrantedItem[]>(resolve => { arrived = resolve })
        const unroute = this.svc.route(owner, items => { arrived(items) })
        let waiting = false
        try {
          const { result, sentAt } = await this.svc.submit(session, { op: 'claim', queue: this.name, owner, visibilityMs, max: 1, wait, maxAttempts: null })
          if (!result.ok) {
            if (result.error === 'no-session') continue
            throw resultError(result)
          }
          const now = (result.value as { items: GrantedItem[] }).items
          if (now.length > 0) return this.svc.job(this.name, session, now[0], this.decode(now[0].payload), visibilityMs, sentAt)
          if (!wait) return null
          waiting = true
          const [item] = await abortable(granted, signal)
          waiting = false
          // The grant came in a later entry than our claim, which the leader applied first: the claim's send time is
          // a safe anchor. After a long wait it leaves little visibility, so confirm and count from the confirmation.
          if (sentAt + visibilityMs * (1 - LEASE_MARGIN) - this.svc.o.clock.monotonic() >= visibilityMs / 2) {
            return this.svc.job(this.name, session, item, this.decode(item.payload), visibilityMs, sentAt)
          }
          const confirm = await this.svc.submit(session, { op: 'extend', queue: this.name, id: item.id, fence: item.fence, visibilityMs })
          if (confirm.result.ok) return this.svc.job(this.name, session, item, this.decode(item.payload), visibilityMs, confirm.sentAt)
        } finally {
          unroute()
          if (waiting) {
            // Gave up while waiting: leave the line, and return an item that was granted meanwhile.
            if (keeper.session === session) this.svc.submit(session, { op: 'unwait', queue: this.name, owner }).catch(() => {})
            void granted.then(items => { for (const it of items) this.svc.giveBackQuietly(this.name, session, it) })
          }
        }
      }
    } finally {
      if (timer !== null) clearTimeout(timer)
    }
  }
}

/** A queue's numbers in a node's applied state, `now` being wall-clock time (for the oldest item's age). */
export function queueStats (state: CoordinationState, name: string, now: number): QueueStats {
  const s = state.queues.stats(name, now)
  return { depth: s.depth, ready: s.ready, delayed: s.delayed, inFlight: s.inFlight, deadLetters: s.deadLetters, waiting: s.waiters, acked: s.acked, oldestAgeMs: s.oldestAgeMs }
}

export function resultError (result: Extract<CommandResult, { ok: false }>): Error {
  switch (result.error) {
    case 'full': return new QueueFullError(result.message)
    case 'no-session': return new SessionLostError(result.message)
    default: return new InvalidArgumentError(result.message)
  }
}

async function abortable<T> (p: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted()
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason as Error) }
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(v => { signal.removeEventListener('abort', onAbort); resolve(v) }, reject)
  })
}
