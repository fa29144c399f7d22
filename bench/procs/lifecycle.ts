/**
 * Shared by the benchmark child processes: stop cleanly when the bench that
 * spawned us goes away (IPC disconnect) or asks us to (SIGTERM), and never
 * hang on the way out.
 */
export function exitWithParent (close: () => Promise<void>): void {
  let stopping = false
  const stop = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    setTimeout(() => process.exit(0), 3000).unref()
    try {
      await close()
    } finally {
      process.exit(0)
    }
  }
  process.on('disconnect', () => { void stop() })
  process.on('SIGTERM', () => { void stop() })
}
