/**
 * One claimed queue item in a worker's hands.
 *
 * Its lease is anchored at the moment this node sent the command that
 * granted or last extended the claim: the leader starts the same
 * visibility later (when it applies that command), so `signal` aborts and
 * `valid()` turns false before the leader can hand the item to anyone else,
 * less a margin for clocks that run at different rates.
 */
import { ClaimExpiredError } from '../errors.js'
import { LEASE_MARGIN } from '../session.js'

/** A claimed item. Ack it when done; nack it to retry later; or let `process()` do both. */
export interface Job<T> {
  readonly id: string
  readonly payload: T
  /** Log index of the claim: larger for every later claim of the same item. Send it with writes to outside systems. */
  readonly fence: bigint
  /** Claims of this item so far, this one included (1 on the first). */
  readonly attempt: number
  /** Leader-stamped wall-clock time of the enqueue. */
  readonly enqueuedAt: number
  /** Aborts before the claim can expire on the leader, when it ends (ack, nack, session lost, quorum lost), and on stop. */
  readonly signal: AbortSignal
  /** Synchronous check against the monotonic clock: false once the claim, or the session it belongs to, is no longer certain (so right even in a process resumed after a pause, before its timers run). */
  valid(): boolean
  /** Removes the item for good. Idempotent; rejects with ClaimExpiredError if the claim had ended. */
  ack(): Promise<void>
  /** Gives the item back (after `delayMs`), or to the dead letters once its attempts are spent. */
  nack(opts?: { delayMs?: number, error?: string }): Promise<void>
  /** Restarts the visibility (default: the claim's) from now. */
  extend(visibilityMs?: number): Promise<void>
}

// One reason for every job that ends normally: a new Error per ack (with its stack trace) cost more than the ack's own apply.
const ACKED = new ClaimExpiredError('the item was acked')
const GIVEN_BACK = new ClaimExpiredError('the item was given back')

export interface JobSubmit {
  /** Sends a queue command for this claim; resolves with its answer and when it was sent (monotonic). */
  (cmd: { op: 'ack' } | { op: 'nack', delayMs: number, error: string | null } | { op: 'extend', visibilityMs: number } | { op: 'give-back' }): Promise<{ ok: boolean, message?: string, sentAt: number }>
}

export class ClaimedJob<T> implements Job<T> {
  readonly id: string
  readonly payload: T
  readonly fence: bigint
  readonly attempt: number
  readonly enqueuedAt: number
  readonly session: string
  /** Made when `signal` is first read: a worker that never reads it costs no AbortController and no abort event. */
  private controller: AbortController | null = null
  private endedBy: Error | null = null
  private readonly onEnd: (() => void) | undefined
  private readonly submit: JobSubmit
  private readonly now: () => number
  private visibilityMs: number
  private deadline: number
  private lapse: NodeJS.Timeout | null = null
  private settled: Promise<void> | null = null

  private readonly sessionValid: () => boolean

  /** `sessionValid` reads the claimer's session lease: its end returns the item too, whatever the visibility. `onEnd` runs once when the claim ends here. */
  constructor (init: { id: string, payload: T, fence: number, attempt: number, enqueuedAt: number, session: string, visibilityMs: number, anchoredAt: number }, submit: JobSubmit, now: () => number, sessionValid: () => boolean, onEnd?: () => void) {
    this.id = init.id
    this.payload = init.payload
    this.fence = BigInt(init.fence)
    this.attempt = init.attempt
    this.enqueuedAt = init.enqueuedAt
    this.session = init.session
    this.visibilityMs = init.visibilityMs
    this.submit = submit
    this.now = now
    this.sessionValid = sessionValid
    this.onEnd = onEnd
    this.deadline = -Infinity
    this.renew(init.anchoredAt)
  }

  get signal (): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController()
      if (this.endedBy !== null) this.controller.abort(this.endedBy)
    }
    return this.controller.signal
  }

  /** The claim ended here (acked, given back, expired, lost): what `signal` aborts with. */
  get ended (): boolean {
    return this.endedBy !== null
  }

  get done (): boolean {
    return this.settled !== null
  }

  valid (): boolean {
    return this.endedBy === null && this.now() < this.deadline && this.sessionValid()
  }

  /** The claim ended elsewhere (expiry, session end, panic, stop). */
  end (reason: Error): void {
    if (this.lapse !== null) clearTimeout(this.lapse)
    if (this.endedBy !== null) return
    this.endedBy = reason
    this.onEnd?.()
    this.controller?.abort(reason)
  }

  async ack (): Promise<void> {
    this.settled ??= this.finish({ op: 'ack' })
    await this.settled
  }

  async nack (opts: { delayMs?: number, error?: string } = {}): Promise<void> {
    this.settled ??= this.finish({ op: 'nack', delayMs: Math.max(0, Math.round(opts.delayMs ?? 0)), error: opts.error?.slice(0, 1024) ?? null })
    await this.settled
  }

  /** Returns the item untouched (its attempt not counted): a worker stopping before it finished. */
  async giveBack (): Promise<void> {
    this.settled ??= this.finish({ op: 'give-back' })
    await this.settled
  }

  async extend (visibilityMs = this.visibilityMs): Promise<void> {
    if (this.settled !== null || this.endedBy !== null) throw new ClaimExpiredError(`the claim of item ${this.id} has ended`)
    const r = await this.submit({ op: 'extend', visibilityMs })
    if (!r.ok) {
      const err = new ClaimExpiredError(r.message ?? `the claim of item ${this.id} expired`)
      this.end(err)
      throw err
    }
    this.visibilityMs = visibilityMs
    this.renew(r.sentAt)
  }

  private async finish (cmd: Parameters<JobSubmit>[0]): Promise<void> {
    const r = await this.submit(cmd)
    this.end(cmd.op === 'ack' ? ACKED : GIVEN_BACK)
    if (!r.ok) throw new ClaimExpiredError(r.message ?? `the claim of item ${this.id} expired`)
  }

  private renew (anchoredAt: number): void {
    const now = this.now()
    // Continuous or dead: an answer that comes after the deadline revives nothing.
    if (this.deadline !== -Infinity && now >= this.deadline) return
    this.deadline = Math.max(this.deadline, anchoredAt + this.visibilityMs * (1 - LEASE_MARGIN))
    if (this.lapse !== null) clearTimeout(this.lapse)
    if (now >= this.deadline) {
      this.end(new ClaimExpiredError(`the claim of item ${this.id} lapsed before it was confirmed`))
      return
    }
    this.arm()
  }

  private arm (): void {
    const left = this.deadline - this.now()
    if (left <= 0) {
      this.end(new ClaimExpiredError(`the claim of item ${this.id} may expire on the leader: its visibility passed`))
      return
    }
    this.lapse = setTimeout(() => { this.arm() }, left)
  }
}
