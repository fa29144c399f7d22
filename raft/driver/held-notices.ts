/**
 * Commit notices the leader's driver holds back. A notice tells an idle
 * follower the new commit index without asking for a reply; under steady
 * writes the next Append to that follower carries the commit anyway, so a
 * notice waits a little and is dropped when an Append overtakes it. That
 * saves the follower a wakeup per write.
 */
import type { Message } from '../core/messages.js'
import type { NodeId } from '../types.js'

/** Runs `fn` once after `ms`; returns a function that cancels it. */
export type Schedule = (fn: () => void, ms: number) => () => void

export class HeldNotices {
  private readonly held = new Map<NodeId, Message>()
  /** Set exactly while notices are held: a timer left over from notices an Append already dropped would send newer ones early. */
  private cancelTimer: (() => void) | null = null

  constructor (
    private readonly delayMs: number,
    private readonly emit: (notices: Message[]) => void,
    private readonly schedule: Schedule
  ) {}

  get size (): number {
    return this.held.size
  }

  /** Holds notices (a newer one for the same follower replaces the older) for at most delayMs. */
  hold (notices: readonly Message[]): void {
    for (const m of notices) this.held.set(m.to, m)
    if (this.held.size > 0 && this.cancelTimer === null) {
      this.cancelTimer = this.schedule(() => {
        this.cancelTimer = null
        this.flush()
      }, this.delayMs)
    }
  }

  /**
   * Call before `messages` leave: a notice to a follower that gets an Append
   * is dropped (the Append carries the commit), and the others go first so
   * messages keep their order.
   */
  beforeSend (messages: readonly Message[]): void {
    if (this.held.size === 0) return
    for (const m of messages) if (m.type === 'Append') this.held.delete(m.to)
    this.flush()
  }

  /** Sends whatever is held now. */
  flush (): void {
    this.stopTimer()
    if (this.held.size === 0) return
    const notices = [...this.held.values()]
    this.held.clear()
    this.emit(notices)
  }

  /** Forgets everything held, sending nothing. */
  clear (): void {
    this.stopTimer()
    this.held.clear()
  }

  private stopTimer (): void {
    this.cancelTimer?.()
    this.cancelTimer = null
  }
}
