/**
 * Opt-in reentrancy, scoped to one async context: inside a `withLock`
 * callback, an `acquire` of the same name on a reentrant lock gets the held
 * lock again (same fence, same signal) with a hold count, instead of
 * queueing behind itself. Outside that context two requests are two
 * holders, as the contract says, so unrelated concurrent work in one
 * process never shares a lock by accident.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { LockHandle } from './lock-handle.js'

interface Hold {
  readonly handle: LockHandle
  count: number
}

export class ReentrantScope {
  private readonly als = new AsyncLocalStorage<ReadonlyMap<string, Hold>>()

  /** Runs `fn` with `handle` held for `name` in its async context. */
  async run<T> (name: string, handle: LockHandle, fn: () => Promise<T>): Promise<T> {
    const holds = new Map(this.als.getStore() ?? [])
    holds.set(name, { handle, count: 1 })
    return await this.als.run(holds, fn)
  }

  /** A nested hold of `name` if this context holds it validly, else null. */
  enter (name: string): LockHandle | null {
    const hold = this.als.getStore()?.get(name)
    if (hold === undefined || !hold.handle.valid()) return null
    hold.count++
    let released = false
    const release = async (): Promise<void> => {
      if (released) return
      released = true
      hold.count--
    }
    const outer = hold.handle
    return {
      name: outer.name,
      fence: outer.fence,
      signal: outer.signal,
      valid: () => !released && outer.valid(),
      release,
      [Symbol.asyncDispose]: release
    }
  }

  /** How many holds of `name` this context has (0 outside a withLock). */
  depth (name: string): number {
    return this.als.getStore()?.get(name)?.count ?? 0
  }
}
