/**
 * How long one turn of the event loop has been running, so that work fed
 * by a promise chain can step aside. gossipsub reads a peer's stream with
 * `for await`: a backlog already buffered is consumed in one chain of
 * microtasks, and timers and other I/O wait until it is gone. Under a
 * flood that was 200–700 ms, the mesh's keep-alives stood still, and live
 * members were cut off for silence. The channel's validator asks
 * `overdue()` for each message and, when the turn has run `budgetMs`,
 * waits for `pause()` (the next check phase) before answering; gossipsub
 * awaits each message's validation (node.ts: awaitRpcHandler), so its read
 * loop waits with it.
 */
export class TurnBudget {
  private readonly budgetMs: number
  private readonly now: () => number
  /** When the current turn's first check came; -1 between turns. */
  private startedAt = -1
  private pauses = 0

  constructor (budgetMs: number, now: () => number = () => performance.now()) {
    this.budgetMs = budgetMs
    this.now = now
  }

  /** Times the budget ran out and work stepped aside. */
  get paused (): number {
    return this.pauses
  }

  /** True once the current turn has run longer than the budget. */
  overdue (): boolean {
    const now = this.now()
    if (this.startedAt < 0) {
      this.startedAt = now
      // Runs once this turn's callbacks are done: the next check starts a new turn.
      setImmediate(() => { this.startedAt = -1 })
      return false
    }
    return now - this.startedAt > this.budgetMs
  }

  /** Resolves in a later turn, after the timers and I/O that were waiting. */
  async pause (): Promise<void> {
    this.pauses++
    await new Promise(resolve => { setImmediate(resolve) })
  }
}
