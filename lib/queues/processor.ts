/**
 * A worker loop on one queue (`queue.process(fn, opts)`).
 *
 * It keeps one waiter on the log whose capacity is exactly its free slots:
 * it asks for as many items as it has slots at start, one more each time a
 * job finishes (sent in the same batch as that job's ack), and the log
 * hands items over as they are enqueued. So it never holds more items than
 * it can run, and it never polls. An item handed over while no slot is free
 * (after a request whose outcome was unknown) is given back at once.
 */
import { EventEmitter } from 'node:events'
import type { Logger } from '../../gossip/logger.js'
import { errorFields } from '../../gossip/logger.js'
import type { GrantedItem } from '../coordination/queue-table.js'
import { ClusterStoppedError, InvalidArgumentError } from '../errors.js'
import type { ClaimedJob, Job } from './job.js'
import { LEASE_MARGIN } from '../session.js'
import type { QueueService } from './queue-service.js'

export interface ProcessOptions {
  /** Jobs run at once on this node (default 1). */
  readonly concurrency?: number
  /** Visibility of each claim; extended every third of it while `fn` runs (default 30 s). */
  readonly visibilityMs?: number
  /** Overrides the queue's maxAttempts for items this processor claims. */
  readonly maxAttempts?: number
  /** Delay before a failed item is retried (default: 500 ms doubling per attempt, at most 60 s). */
  readonly backoffMs?: (attempt: number) => number
}

const RETRY_REQUEST_MS = 200

export interface ProcessorEvents<T> {
  /** A job's handler resolved and its ack is applied on this node. */
  completed: [Job<T>]
  /** A job's handler threw: the item is nacked (retried or dead-lettered), or went back already if its claim had ended. */
  failed: [Job<T>, Error]
}

export class Processor<T> extends EventEmitter<ProcessorEvents<T>> {
  private readonly svc: QueueService
  private readonly queue: string
  private readonly decode: (p: Uint8Array) => T
  private readonly fn: (job: Job<T>) => Promise<void>
  private readonly concurrency: number
  private readonly visibilityMs: number
  private readonly maxAttempts: number | null
  private readonly backoffMs: (attempt: number) => number
  private readonly owner: string
  private readonly log: Logger
  private readonly unroute: () => void
  private readonly offStop: () => void
  private readonly jobs = new Set<ClaimedJob<T>>()
  private readonly runs = new Set<Promise<void>>()
  /** Slots taken: jobs running or being confirmed. */
  private busy = 0
  /** Items the log still owes this processor under `session`. */
  private asked = 0
  /** When the latest claim request whose answer this node applied was sent (see start()). */
  private anchor = -Infinity
  private session: string | null = null
  private retry: NodeJS.Timeout | null = null
  private topUpQueued = false
  private stopping: Promise<void> | null = null
  /** Jobs that finished: acked, and failed (nacked). */
  processed = 0
  failed = 0

  constructor (svc: QueueService, queue: string, decode: (p: Uint8Array) => T, fn: (job: Job<T>) => Promise<void>, opts: ProcessOptions) {
    super()
    this.svc = svc
    this.queue = queue
    this.decode = decode
    this.fn = fn
    this.concurrency = opts.concurrency ?? 1
    this.visibilityMs = opts.visibilityMs ?? 30_000
    this.maxAttempts = opts.maxAttempts ?? null
    this.backoffMs = opts.backoffMs ?? (attempt => Math.min(60_000, 500 * 2 ** (attempt - 1)))
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1 || this.concurrency > 1024) throw new InvalidArgumentError('concurrency must be an integer in 1..1024')
    if (!Number.isInteger(this.visibilityMs) || this.visibilityMs < 300 || this.visibilityMs > 24 * 3600_000) throw new InvalidArgumentError('visibilityMs must be an integer from 300 ms to a day')
    this.owner = svc.newOwner()
    this.log = svc.o.log
    this.unroute = svc.route(this.owner, (items, session) => { this.arrived(items, session, true, session === this.session ? this.anchor : -Infinity) })
    this.offStop = svc.onStop(async () => { await this.stop() })
    svc.o.keeper.on('opened', this.onOpened)
    this.topUp()
  }

  /** Jobs running now. */
  get running (): number {
    return this.busy
  }

  /** Stops claiming, aborts running jobs' signals and gives their items back; resolves when done. */
  async stop (): Promise<void> {
    this.stopping ??= this.shutdown()
    await this.stopping
  }

  private readonly onOpened = (): void => { this.topUp() }

  private async shutdown (): Promise<void> {
    this.unroute()
    this.offStop()
    this.svc.o.keeper.off('opened', this.onOpened)
    if (this.retry !== null) clearTimeout(this.retry)
    const session = this.session
    if (session !== null && this.svc.o.keeper.session === session) {
      await this.svc.submit(session, { op: 'unwait', queue: this.queue, owner: this.owner }).catch(() => {})
    }
    await Promise.allSettled([...this.jobs].map(async j => {
      j.end(new ClusterStoppedError('the processor stopped; the item goes back to the queue'))
      await j.giveBack()
    }))
    await Promise.allSettled([...this.runs])
  }

  /** Slots freed in one turn are asked for in one claim, still in the batch of their acks (sent at the end of the turn). */
  private topUpSoon (): void {
    if (this.topUpQueued) return
    this.topUpQueued = true
    queueMicrotask(() => {
      this.topUpQueued = false
      this.topUp()
    })
  }

  /** Asks the log for as many items as there are free slots not yet asked for. */
  private topUp (): void {
    if (this.stopping !== null) return
    const session = this.svc.o.keeper.session
    if (session === null) return
    if (session !== this.session) {
      this.session = session
      this.asked = 0
      this.anchor = -Infinity
    }
    const want = this.concurrency - this.busy - this.asked
    if (want <= 0) return
    this.asked += want
    this.svc.submit(session, { op: 'claim', queue: this.queue, owner: this.owner, visibilityMs: this.visibilityMs, max: want, wait: true, maxAttempts: this.maxAttempts }).then(({ result, sentAt }) => {
      if (!result.ok) throw new Error(result.message)
      if (this.session === session) this.anchor = Math.max(this.anchor, sentAt)
      this.arrived((result.value as { items: GrantedItem[] }).items, session, false, sentAt)
    }).catch((err: unknown) => {
      if (this.session === session) this.asked = Math.max(0, this.asked - want)
      this.log.debug({ queue: this.queue, ...errorFields(err) }, 'claim request not applied; asking again')
      if (this.retry === null && this.stopping === null) this.retry = setTimeout(() => { this.retry = null; this.topUp() }, RETRY_REQUEST_MS)
    })
  }

  private arrived (items: GrantedItem[], session: string, waited: boolean, sentAt: number): void {
    for (const item of items) {
      if (session === this.session) this.asked = Math.max(0, this.asked - 1)
      if (this.stopping !== null || session !== this.session || this.busy >= this.concurrency) {
        this.svc.giveBackQuietly(this.queue, session, item)
        continue
      }
      this.busy++
      let freed = false
      // The slot is free once the job's ack or nack is sent, so the request for the next item rides in the same batch.
      const free = (): void => {
        if (freed) return
        freed = true
        this.busy--
        this.topUpSoon()
      }
      const run = this.start(item, session, waited, sentAt, free).finally(() => {
        this.runs.delete(run)
        free()
      })
      this.runs.add(run)
    }
  }

  private async start (item: GrantedItem, session: string, waited: boolean, sentAt: number, free: () => void): Promise<void> {
    let anchoredAt = sentAt
    // Handed over in a later entry than our requests. The leader starts the
    // claim's visibility when it applies that entry, after it applied every
    // request of ours that this node had applied: one sent at `sentAt` (the
    // latest such) is a safe anchor. If that leaves less than half the
    // visibility, confirm first and count from the confirmation.
    if (waited && sentAt + this.visibilityMs * (1 - LEASE_MARGIN) - this.svc.o.clock.monotonic() < this.visibilityMs / 2) {
      const confirm = await this.svc.submit(session, { op: 'extend', queue: this.queue, id: item.id, fence: item.fence, visibilityMs: this.visibilityMs }).catch(() => null)
      if (confirm === null || !confirm.result.ok) return
      anchoredAt = confirm.sentAt
    }
    let payload: T
    try {
      payload = this.decode(item.payload)
    } catch (err) {
      this.failed++
      await this.svc.submit(session, { op: 'nack', queue: this.queue, id: item.id, fence: item.fence, delayMs: 0, error: `undecodable payload: ${(err as Error).message}` }).catch(() => {})
      return
    }
    const job = this.svc.job(this.queue, session, item, payload, this.visibilityMs, anchoredAt)
    if (job.ended) return
    this.jobs.add(job)
    const every = Math.floor(this.visibilityMs / 3)
    const keepVisible = setInterval(() => { job.extend().catch(() => {}) }, every)
    try {
      await this.fn(job)
      const acked = job.ack()
      free()
      await acked
      this.processed++
      this.tell(() => this.emit('completed', job))
    } catch (err) {
      this.failed++
      if (!job.done) this.tell(() => this.emit('failed', job, err instanceof Error ? err : new Error(String(err))))
      if (!job.done && !job.ended) {
        const nacked = job.nack({ delayMs: this.backoffMs(job.attempt), error: (err as Error)?.message ?? String(err) })
        free()
        await nacked.catch(() => {})
      }
    } finally {
      clearInterval(keepVisible)
      this.jobs.delete(job)
    }
  }

  /** A listener that throws is logged: it must not turn a finished job into a failed one. */
  private tell (emit: () => void): void {
    try {
      emit()
    } catch (err) {
      this.log.warn({ queue: this.queue, ...errorFields(err) }, 'a processor listener threw')
    }
  }
}
