/**
 * Singleton work (a search indexer, a nightly job's coordinator): one node
 * at a time wins `name`, and every node can see who. Built on the lock
 * table, so the winner holds a handle with a fence and a lease-bound signal.
 */
import { EventEmitter } from 'node:events'
import type { CoordinationState } from './coordination/state.js'
import type { AcquireOptions, LockHandle } from './lock-handle.js'
import type { LockService } from './locks.js'

export interface ElectionEvents {
  /** The winner changed (null: nobody holds it now), as applied on this node. */
  change: [string | null]
}

/** How the node's Elections tell one election its winner may have changed (not part of the API). */
const NOTIFY = Symbol('notify')

export class Election extends EventEmitter<ElectionEvents> {
  readonly name: string
  private readonly locks: LockService
  private readonly state: CoordinationState
  private last: string | null

  /** Use `cluster.election(name)`. */
  constructor (name: string, locks: LockService, state: CoordinationState) {
    super()
    this.name = name
    this.locks = locks
    this.state = state
    this.last = this.leader()
  }

  /** Waits until this node wins; the handle's release() resigns. */
  async campaign (opts: AcquireOptions = {}): Promise<LockHandle> {
    return await this.locks.acquire('election', this.name, opts)
  }

  /** The node that holds the election as applied on this node, or null. */
  leader (): string | null {
    return this.state.holderNode('election', this.name)
  }

  [NOTIFY] (): void {
    const now = this.leader()
    if (now === this.last) return
    this.last = now
    this.emit('change', now)
  }
}

/**
 * A node's elections by name, with one listener on the log for all of them:
 * a listener per election made every grant cost as many calls as the node
 * had elections. Each name's object is kept for the node's life, since
 * `cluster.election(name).on('change', fn)` holds no reference to it.
 */
export class Elections {
  private readonly byName = new Map<string, Election>()

  constructor (private readonly locks: LockService, private readonly state: CoordinationState) {
    const check = (e: { kind: string, name: string }): void => { if (e.kind === 'election') this.byName.get(e.name)?.[NOTIFY]() }
    state.on('granted', check)
    state.on('released', check)
    state.on('restored', () => { for (const e of this.byName.values()) e[NOTIFY]() })
  }

  /** The election called `name`, one object per name. */
  get (name: string): Election {
    let e = this.byName.get(name)
    if (e === undefined) {
      e = new Election(name, this.locks, this.state)
      this.byName.set(name, e)
    }
    return e
  }
}
