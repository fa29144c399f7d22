/**
 * Gathers the commands one session submits in the same turn of the event
 * loop into one `batch` command: one log entry, one fsync and one round
 * trip for many small queue operations (acks, claims, extensions) that
 * arrive together. Throughput then comes from fewer, larger entries rather
 * than more of them.
 */
import { MAX_BATCH_COMMANDS, type CommandResult, type SingleCommand } from './coordination/commands.js'
import type { Proposer, SubmitOptions } from './proposer.js'

/** A batch is sent early once its commands' payloads reach this many bytes (well under MAX_COMMAND_BYTES). */
const MAX_BATCH_PAYLOAD_BYTES = 384 * 1024

interface Waiting {
  readonly cmd: SingleCommand
  readonly resolve: (r: { result: CommandResult, sentAt: number }) => void
  readonly reject: (e: unknown) => void
}

interface OpenBatch {
  readonly session: string
  readonly items: Waiting[]
  readonly keys: Set<string>
  bytes: number
}

export interface BatchSubmitOptions extends Pick<SubmitOptions, 'timeoutMs'> {
  /**
   * Stops waiting for this command alone: taken out of its batch if the
   * batch is not sent yet; otherwise the batch goes on and the command's
   * outcome is unknown, as with an aborted `Proposer.submit`.
   */
  readonly signal?: AbortSignal
  /**
   * Commands with the same key never share a batch. Locks use the lock's
   * name: a grant's fence is its entry's index, so two grants of one lock
   * in one entry (a release promoting a waiter whose own release follows)
   * would share a fence.
   */
  readonly key?: string
}

export class CommandBatcher {
  private readonly proposer: Proposer
  private readonly now: () => number
  private open: OpenBatch | null = null

  /** `now` is the monotonic clock: each answer says when its batch was sent. */
  constructor (proposer: Proposer, now: () => number) {
    this.proposer = proposer
    this.now = now
  }

  /**
   * Applies `cmd` as `session`, batched with its neighbours; resolves with
   * its own answer and the monotonic time the batch was sent (a lease
   * anchored there is safe: the leader applied it later).
   */
  async submit (session: string, cmd: SingleCommand, opts: BatchSubmitOptions = {}): Promise<{ result: CommandResult, sentAt: number }> {
    const { signal, key, ...sendOpts } = opts
    signal?.throwIfAborted()
    return await new Promise((resolve, reject) => {
      const bytes = 64 + ('payload' in cmd ? cmd.payload.byteLength : 0)
      if (this.open !== null && (this.open.session !== session || this.open.bytes + bytes > MAX_BATCH_PAYLOAD_BYTES || this.open.items.length >= MAX_BATCH_COMMANDS || (key !== undefined && this.open.keys.has(key)))) this.flush(sendOpts)
      if (this.open === null) {
        const batch: OpenBatch = { session, items: [], keys: new Set(), bytes: 0 }
        this.open = batch
        setImmediate(() => { if (this.open === batch) this.flush(sendOpts) })
      }
      const batch = this.open
      if (key !== undefined) batch.keys.add(key)
      if (signal === undefined) {
        batch.items.push({ cmd, resolve, reject })
      } else {
        const onAbort = (): void => {
          const at = batch.items.indexOf(w)
          if (this.open === batch && at >= 0) {
            batch.items.splice(at, 1)
            batch.bytes -= bytes
          }
          reject(signal.reason)
        }
        const w: Waiting = {
          cmd,
          resolve: r => { signal.removeEventListener('abort', onAbort); resolve(r) },
          reject: e => { signal.removeEventListener('abort', onAbort); reject(e) }
        }
        signal.addEventListener('abort', onAbort, { once: true })
        batch.items.push(w)
      }
      batch.bytes += bytes
    })
  }

  private flush (opts: Pick<SubmitOptions, 'timeoutMs'>): void {
    const batch = this.open
    if (batch === null) return
    this.open = null
    const { session, items } = batch
    if (items.length === 0) return
    const sentAt = this.now()
    const cmd = items.length === 1 ? items[0].cmd : { op: 'batch' as const, cmds: items.map(i => i.cmd) }
    this.proposer.submit(session, cmd, opts).then(({ result }) => {
      if (items.length === 1) {
        items[0].resolve({ result, sentAt })
        return
      }
      const results = result.ok ? result.value as CommandResult[] : null
      items.forEach((w, i) => { w.resolve({ result: results?.[i] ?? (result.ok ? { ok: false, error: 'no-session', message: 'not applied: the session ended earlier in its batch' } : result), sentAt }) })
    }, (err: unknown) => {
      for (const w of items) w.reject(err)
    })
  }
}
