/**
 * Locks and elections: one holder per name, FIFO waiters, and a fence that
 * is the log index of the grant, so it strictly increases per name across
 * leaders and restarts (etcd's revision plays this part in its Mutex).
 */
import type { LockKind } from './commands.js'

export interface LockOwner {
  readonly session: string
  /** One acquire call; two concurrent acquires in one process are two owners. */
  readonly owner: string
}

export interface Holder extends LockOwner {
  readonly fence: number
  /** Leader stamp of the grant. */
  readonly grantedAt: number
}

export interface Waiter extends LockOwner {
  readonly since: number
}

export interface LockRecord {
  readonly kind: LockKind
  readonly name: string
  holder: Holder | null
  waiters: Waiter[]
}

export interface Grant extends Holder {
  readonly kind: LockKind
  readonly name: string
}

export function lockKey (kind: LockKind, name: string): string {
  return `${kind}\u0000${name}`
}

export class LockTable {
  private readonly locks = new Map<string, LockRecord>()
  /** Names each session holds or waits for, so ending a session is not a scan. */
  private readonly bySession = new Map<string, Set<string>>()

  get (kind: LockKind, name: string): LockRecord | undefined {
    return this.locks.get(lockKey(kind, name))
  }

  all (): IterableIterator<LockRecord> {
    return this.locks.values()
  }

  /** Grants at once if free; otherwise queues (wait) or refuses. A repeated request by the same owner is answered as it stands. */
  acquire (kind: LockKind, name: string, who: LockOwner, wait: boolean, index: number, stamp: number): { granted: boolean, queued: boolean, fence?: number } {
    const key = lockKey(kind, name)
    let rec = this.locks.get(key)
    if (rec === undefined) {
      rec = { kind, name, holder: null, waiters: [] }
      this.locks.set(key, rec)
    }
    if (rec.holder !== null && same(rec.holder, who)) return { granted: true, queued: false, fence: rec.holder.fence }
    if (rec.waiters.some(w => same(w, who))) return { granted: false, queued: true }
    if (rec.holder === null) {
      rec.holder = { ...who, fence: index, grantedAt: stamp }
      this.track(who.session, key)
      return { granted: true, queued: false, fence: index }
    }
    if (!wait) {
      return { granted: false, queued: false }
    }
    rec.waiters.push({ ...who, since: stamp })
    this.track(who.session, key)
    return { granted: false, queued: true }
  }

  /** Releases or dequeues `who`; returns the grant to the next waiter, if any. */
  release (kind: LockKind, name: string, who: LockOwner, index: number, stamp: number): Grant | null {
    const key = lockKey(kind, name)
    const rec = this.locks.get(key)
    if (rec === undefined) return null
    rec.waiters = rec.waiters.filter(w => !same(w, who))
    let grant: Grant | null = null
    if (rec.holder !== null && same(rec.holder, who)) {
      rec.holder = null
      grant = this.promote(rec, index, stamp)
    }
    this.untrackIfDone(who.session, key)
    this.dropIfIdle(key, rec)
    return grant
  }

  /** Everything a session held or waited for is let go; returns the grants this causes. */
  endSession (session: string, index: number, stamp: number): Grant[] {
    const keys = this.bySession.get(session)
    this.bySession.delete(session)
    if (keys === undefined) return []
    const grants: Grant[] = []
    // Sorted: the set's order is the order the session first touched each
    // lock, which a node restored from a snapshot rebuilds differently, and
    // every node must tell this entry's grants in the same order.
    for (const key of [...keys].sort()) {
      const rec = this.locks.get(key)
      if (rec === undefined) continue
      rec.waiters = rec.waiters.filter(w => w.session !== session)
      if (rec.holder !== null && rec.holder.session === session) {
        rec.holder = null
        const g = this.promote(rec, index, stamp)
        if (g !== null) grants.push(g)
      }
      this.dropIfIdle(key, rec)
    }
    return grants
  }

  /** Plain data for a snapshot, in a stable order. */
  toJSON (): LockRecord[] {
    return [...this.locks.values()].map(r => ({ kind: r.kind, name: r.name, holder: r.holder, waiters: r.waiters }))
  }

  static fromJSON (records: readonly LockRecord[]): LockTable {
    const t = new LockTable()
    for (const r of records) {
      const key = lockKey(r.kind, r.name)
      t.locks.set(key, { kind: r.kind, name: r.name, holder: r.holder, waiters: [...r.waiters] })
      if (r.holder !== null) t.track(r.holder.session, key)
      for (const w of r.waiters) t.track(w.session, key)
    }
    return t
  }

  private promote (rec: LockRecord, index: number, stamp: number): Grant | null {
    const next = rec.waiters.shift()
    if (next === undefined) return null
    rec.holder = { session: next.session, owner: next.owner, fence: index, grantedAt: stamp }
    return { kind: rec.kind, name: rec.name, ...rec.holder }
  }

  private track (session: string, key: string): void {
    let keys = this.bySession.get(session)
    if (keys === undefined) {
      keys = new Set()
      this.bySession.set(session, keys)
    }
    keys.add(key)
  }

  private untrackIfDone (session: string, key: string): void {
    const rec = this.locks.get(key)
    if (rec !== undefined && (rec.holder?.session === session || rec.waiters.some(w => w.session === session))) return
    const keys = this.bySession.get(session)
    keys?.delete(key)
    if (keys?.size === 0) this.bySession.delete(session)
  }

  private dropIfIdle (key: string, rec: LockRecord): void {
    if (rec.holder === null && rec.waiters.length === 0) this.locks.delete(key)
  }
}

function same (a: LockOwner, b: LockOwner): boolean {
  return a.session === b.session && a.owner === b.owner
}
