/**
 * Tries a call again after a failure, waiting `firstWaitMs` and doubling,
 * until it succeeds or `attempts` tries have failed (then the last error is
 * thrown). The event bus's calls to a publisher fail mostly while a
 * connection is being replaced, which a few seconds of trying outlast.
 */
export async function withRetries<T> (call: () => Promise<T>, attempts: number, firstWaitMs: number, onRetry: (err: unknown, attempt: number) => void, stop: () => boolean = () => false): Promise<T> {
  let wait = firstWaitMs
  for (let attempt = 1; ; attempt++) {
    try {
      return await call()
    } catch (err) {
      if (attempt >= attempts || stop()) throw err
      onRetry(err, attempt)
      await new Promise(resolve => setTimeout(resolve, wait).unref())
      wait *= 2
    }
  }
}
