/**
 * The logger the gossip layer accepts: the subset of pino it uses, so a pino
 * instance (or any child of one) can be injected. Silent by default, as
 * js-libp2p's loggers are until the user turns them on.
 */
export interface LogFn {
  (obj: Record<string, unknown>, msg?: string): void
  (msg: string): void
}

export interface Logger {
  trace: LogFn
  debug: LogFn
  info: LogFn
  warn: LogFn
  error: LogFn
  child(bindings: Record<string, unknown>): Logger
}

const noop: LogFn = () => {}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger
}

/** A loggable summary of an unknown thrown value. */
export function errorFields (err: unknown): Record<string, unknown> {
  if (err instanceof Error) return { err: { name: err.name, message: err.message, code: (err as { code?: unknown }).code } }
  return { err: String(err) }
}
