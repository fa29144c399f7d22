/**
 * A proposal waiting to be applied: one object with methods, where the
 * generic waiter built six closures and a spread copy per proposal. Every
 * committed write on the leader makes one, so it is on the hot path (issue
 * 15: under tsx each closure also costs a defineProperty for its name).
 */
import type { Clock, TimerHandle } from './clock.js'
import { LeadershipLostError } from '../errors.js'

export class PendingProposal<T> {
  private readonly timer: TimerHandle
  private readonly onAbort: (() => void) | null

  constructor (
    readonly index: number,
    readonly term: number,
    /** The map the caller keeps this in, keyed by index; it is removed from there once settled. */
    private readonly pending: Map<number, PendingProposal<T>>,
    private readonly clock: Clock,
    private readonly settleResolve: (v: T) => void,
    private readonly settleReject: (e: Error) => void,
    timeoutMs: number,
    private readonly signal: AbortSignal | undefined,
    what: string
  ) {
    this.timer = clock.setTimeout(() => { this.reject(new LeadershipLostError(`${what} at index ${index} timed out after ${timeoutMs} ms; its outcome is unknown`)) }, timeoutMs)
    this.onAbort = signal === undefined ? null : () => { this.reject(signal.reason as Error) }
    if (this.onAbort !== null) signal?.addEventListener('abort', this.onAbort, { once: true })
  }

  resolve (v: T): void {
    this.cleanup()
    this.settleResolve(v)
  }

  reject (e: Error): void {
    this.cleanup()
    this.settleReject(e)
  }

  private cleanup (): void {
    this.clock.clearTimeout(this.timer)
    if (this.onAbort !== null) this.signal?.removeEventListener('abort', this.onAbort)
    // A later proposal may hold this index now (a new term rewrote the log): leave it be.
    if (this.pending.get(this.index) === this) this.pending.delete(this.index)
  }
}
