/**
 * What a caller holds after `acquire` or `campaign`.
 */

/** A held lock (or won election). Release it with `release()` or `await using`. */
export interface LockHandle extends AsyncDisposable {
  /** The lock's (or election's) name. */
  readonly name: string
  /**
   * The log index of the grant: strictly increasing per name across leaders
   * and restarts. Send it with every write to an outside system so that a
   * stale holder is refused there too.
   */
  readonly fence: bigint
  /**
   * Aborts before the lock could be granted to anyone else: when this node
   * can no longer confirm its session within the lease (minus a margin for
   * clock drift), on quorum loss, when the lock is released, and on stop.
   */
  readonly signal: AbortSignal
  /**
   * Synchronous check against the monotonic clock: false as soon as the
   * lease is no longer certain, even in a process that was paused and whose
   * timers have not run yet.
   */
  valid(): boolean
  /** Releases the lock; idempotent. Resolves once the release is applied on this node. */
  release(): Promise<void>
}

export interface AcquireOptions {
  /** Give up waiting after this long with LockTimeoutError. Default: wait until `signal` aborts. */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
}
