/**
 * One timer for the mesh's periodic work (keep-alives of every member
 * connection, the gossip link check): each period it runs every callback
 * registered, so an idle node wakes once per period instead of once per
 * callback. The timer runs only while something is registered, and never
 * keeps the process alive.
 */
export class Beat {
  readonly periodMs: number
  private readonly callbacks = new Set<() => void>()
  private timer: NodeJS.Timeout | null = null

  constructor (periodMs: number) {
    this.periodMs = periodMs
  }

  /** Runs `fn` every period from the next beat on; returns its removal. */
  add (fn: () => void): () => void {
    // A wrapper per registration: the same function added twice runs twice and is removed once per removal.
    const entry = (): void => { fn() }
    this.callbacks.add(entry)
    if (this.timer === null) {
      this.timer = setInterval(() => { for (const cb of [...this.callbacks]) cb() }, this.periodMs)
      this.timer.unref()
    }
    return () => {
      this.callbacks.delete(entry)
      if (this.callbacks.size === 0 && this.timer !== null) {
        clearInterval(this.timer)
        this.timer = null
      }
    }
  }
}
