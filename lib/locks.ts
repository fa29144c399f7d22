/**
 * The node's side of locks and elections: asks the coordination log for a
 * grant, waits for it in log order, and turns it into a LockHandle whose
 * signal and `valid()` follow this node's session lease.
 */
import { randomBytes } from 'node:crypto'
import type { Logger } from '../gossip/logger.js'
import { errorFields } from '../gossip/logger.js'
import type { LockKind } from './coordination/commands.js'
import type { CoordinationState } from './coordination/state.js'
import { ClusterStoppedError, LockLostError, LockTimeoutError, SessionLostError } from './errors.js'
import type { AcquireOptions, LockHandle } from './lock-handle.js'
import type { CommandBatcher } from './batcher.js'
import type { SessionKeeper } from './session.js'

interface Held {
  readonly kind: LockKind
  readonly name: string
  readonly session: string
  readonly owner: string
  readonly fence: number
  /** Made when the caller first reads `signal`: most holders never do, and each costs an AbortController and its abort event. */
  controller: AbortController | null
  /** Why the handle stopped being valid, built only if its signal exists or is read later. */
  lost: (() => Error) | null
  released: boolean
}

interface Awaiting {
  readonly kind: LockKind
  readonly name: string
  readonly session: string
  readonly resolve: (fence: number) => void
}

export interface LockServiceOptions {
  readonly state: CoordinationState
  /** Lock commands go through the batcher: a process's holders whose turns come together share one log entry. */
  readonly batcher: CommandBatcher
  readonly keeper: SessionKeeper
  readonly log: Logger
}

export class LockService {
  private readonly o: LockServiceOptions
  private readonly held = new Map<string, Held>()
  private readonly awaiting = new Map<string, Awaiting>()
  private readonly ownerPrefix = randomBytes(4).toString('hex')
  private ownerSeq = 0
  private stopped = false

  constructor (o: LockServiceOptions) {
    this.o = o
    o.state.on('granted', g => {
      const w = this.awaiting.get(g.owner)
      if (w !== undefined && w.session === g.session) w.resolve(g.fence)
      else this.giveBackIfStray(g.kind, g.name, g.session, g.owner)
    })
    o.state.on('released', r => {
      const h = this.held.get(r.owner)
      if (h !== undefined) this.lose(h, () => new LockLostError(`${r.kind} ${r.name} was released on the log`))
    })
    o.state.on('restored', () => {
      for (const h of this.held.values()) {
        const holder = o.state.lock(h.kind, h.name)?.holder
        if (holder?.owner !== h.owner) this.lose(h, () => new LockLostError(`${h.kind} ${h.name} is no longer held by this node`))
      }
      for (const [owner, w] of this.awaiting) {
        const holder = o.state.lock(w.kind, w.name)?.holder
        if (holder !== undefined && holder !== null && holder.owner === owner) w.resolve(holder.fence)
      }
      for (const r of o.state.lockList()) if (r.holder !== null) this.giveBackIfStray(r.kind, r.name, r.holder.session, r.holder.owner)
    })
    o.keeper.on('lost', ({ session, reason }) => { this.abortSession(session, new LockLostError(`this node's session ended (${reason}); its locks may be granted elsewhere`)) })
    o.keeper.on('panic', ({ reason }) => { this.abortAll(new LockLostError(`quorum lost: ${reason}`)) })
  }

  /** Takes `name`, waiting in FIFO order for it. */
  async acquire (kind: LockKind, name: string, opts: AcquireOptions = {}): Promise<LockHandle> {
    const handle = await this.request(kind, name, true, opts)
    if (handle === null) throw new LockTimeoutError(`${kind} ${name} not granted`)
    return handle
  }

  /** Takes `name` if it is free now; null otherwise. */
  async tryAcquire (kind: LockKind, name: string, opts: { signal?: AbortSignal } = {}): Promise<LockHandle | null> {
    return await this.request(kind, name, false, opts)
  }

  /** Aborts every handle (stop). */
  stop (): void {
    this.stopped = true
    this.abortAll(new ClusterStoppedError('the cluster node is stopping; its locks are released'))
  }

  private async request (kind: LockKind, name: string, wait: boolean, opts: AcquireOptions): Promise<LockHandle | null> {
    if (this.stopped) throw new ClusterStoppedError()
    const { batcher, keeper } = this.o
    const timeout = opts.timeoutMs === undefined ? null : new AbortController()
    const timer = timeout === null ? null : setTimeout(() => { timeout.abort(new LockTimeoutError(`${kind} ${name} not granted within ${opts.timeoutMs} ms`)) }, opts.timeoutMs)
    const signal = timeout === null ? opts.signal : opts.signal === undefined ? timeout.signal : AbortSignal.any([opts.signal, timeout.signal])
    try {
      for (;;) {
        const session = await keeper.ensure({ signal })
        const owner = `${this.ownerPrefix}.${++this.ownerSeq}`
        const granted = new Promise<number>(resolve => { this.awaiting.set(owner, { kind, name, session, resolve }) })
        try {
          // No timeoutMs: it would bound the whole batch, other holders' releases included; `signal` carries this call's deadline.
          const { result } = await batcher.submit(session, { op: 'acquire', kind, name, owner, wait }, { signal, key: batchKey(kind, name) })
          if (!result.ok) {
            if (result.error === 'no-session') continue
            throw new SessionLostError(result.message)
          }
          let fence = result.granted === true ? result.fence as number : null
          if (fence === null && result.queued === true) fence = await this.waitForGrant(granted, signal)
          if (fence === null) return null
          if (!keeper.valid(session)) {
            this.releaseQuietly(kind, name, session, owner)
            if (signal?.aborted === true) throw signal.reason as Error
            continue
          }
          return this.handle(kind, name, session, owner, fence)
        } catch (err) {
          // Timed out or aborted while queued (or in flight): leave the queue, or give back a grant that raced in.
          this.releaseQuietly(kind, name, session, owner)
          throw err
        } finally {
          this.awaiting.delete(owner)
        }
      }
    } finally {
      if (timer !== null) clearTimeout(timer)
    }
  }

  private async waitForGrant (granted: Promise<number>, signal: AbortSignal | undefined): Promise<number> {
    if (signal === undefined) return await granted
    signal.throwIfAborted()
    return await new Promise<number>((resolve, reject) => {
      const onAbort = (): void => { reject(signal.reason as Error) }
      signal.addEventListener('abort', onAbort, { once: true })
      granted.then(f => { signal.removeEventListener('abort', onAbort); resolve(f) }, reject)
    })
  }

  private handle (kind: LockKind, name: string, session: string, owner: string, fence: number): LockHandle {
    const h: Held = { kind, name, session, owner, fence, controller: null, lost: null, released: false }
    this.held.set(owner, h)
    // Released on the log before this handle existed (its session ended in the same batch).
    if (this.o.state.lock(kind, name)?.holder?.owner !== owner) this.lose(h, () => new LockLostError(`${kind} ${name} was lost before it was handed out`))
    const release = async (): Promise<void> => {
      if (h.released) return
      h.released = true
      this.lose(h, () => new LockLostError(`${kind} ${name} was released`))
      if (this.o.keeper.session !== session) return
      await this.o.batcher.submit(session, { op: 'release', kind, name, owner }, { key: batchKey(kind, name) }).catch((err: unknown) => {
        // The session will end (stop, expiry), and the lock with it.
        this.o.log.debug({ kind, name, ...errorFields(err) }, 'release not applied')
      })
    }
    return {
      name,
      fence: BigInt(fence),
      get signal () {
        if (h.controller === null) {
          h.controller = new AbortController()
          if (h.lost !== null) h.controller.abort(h.lost())
        }
        return h.controller.signal
      },
      valid: () => h.lost === null && this.o.keeper.valid(session),
      release,
      [Symbol.asyncDispose]: release
    }
  }

  /** The handle is no longer valid: its signal aborts now, or is made aborted when first read. */
  private lose (h: Held, reason: () => Error): void {
    if (h.lost !== null) return
    h.lost = reason
    this.held.delete(h.owner)
    h.controller?.abort(reason())
  }

  /**
   * A grant to this node's session that no caller waits for and no handle
   * holds is an abandoned request's: its batch, still being sent for the
   * other commands in it, can reach the log after the release sent behind
   * it (a retry after a leader change). Nothing would ever release it.
   */
  private giveBackIfStray (kind: LockKind, name: string, session: string, owner: string): void {
    if (session !== this.o.keeper.session || this.awaiting.has(owner) || this.held.has(owner)) return
    this.o.log.debug({ kind, name, owner }, 'giving back a grant no caller waits for')
    this.releaseQuietly(kind, name, session, owner)
  }

  private releaseQuietly (kind: LockKind, name: string, session: string, owner: string): void {
    if (this.o.keeper.session !== session) return
    this.o.batcher.submit(session, { op: 'release', kind, name, owner }, { key: batchKey(kind, name) }).catch((err: unknown) => {
      this.o.log.debug({ kind, name, ...errorFields(err) }, 'release of an abandoned request not applied')
    })
  }

  private abortSession (session: string, reason: Error): void {
    for (const h of this.held.values()) if (h.session === session) this.lose(h, () => reason)
  }

  private abortAll (reason: Error): void {
    for (const h of this.held.values()) this.lose(h, () => reason)
  }
}

/** One lock's commands go in separate batches (see BatchSubmitOptions.key). */
function batchKey (kind: LockKind, name: string): string {
  return `${kind}:${name}`
}
