/**
 * The logging the driver and the log store do, as the subset of a pino
 * logger they call, so an application can pass its own pino instance (or
 * anything shaped like one). Silent by default.
 */

/** A pino-compatible logger: one method per level taking a context object and a message, and child(). */
export interface Logger {
  debug(obj: Record<string, unknown>, msg: string): void
  info(obj: Record<string, unknown>, msg: string): void
  warn(obj: Record<string, unknown>, msg: string): void
  error(obj: Record<string, unknown>, msg: string): void
  /** A logger that adds `bindings` to every line. */
  child(bindings: Record<string, unknown>): Logger
}

const ignore = (): void => {}

/** Logs nothing. */
export const silentLogger: Logger = {
  debug: ignore,
  info: ignore,
  warn: ignore,
  error: ignore,
  child: () => silentLogger
}
