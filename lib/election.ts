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
    const check = (e: { kind: string, name: string }): void => { if (e.kind === 'election' && e.name === name) this.notify() }
    state.on('granted', check)
    state.on('released', check)
    state.on('restored', () => { this.notify() })
  }

  /** Waits until this node wins; the handle's release() resigns. */
  async campaign (opts: AcquireOptions = {}): Promise<LockHandle> {
    return await this.locks.acquire('election', this.name, opts)
  }

  /** The node that holds the election as applied on this node, or null. */
  leader (): string | null {
    return this.state.holderNode('election', this.name)
  }

  private notify (): void {
    const now = this.leader()
    if (now === this.last) return
    this.last = now
    this.emit('change', now)
  }
}
