/**
 * Durable queues on the coordination log: items, their claims, waiting
 * workers and dead letters. Pure like the rest of the state machine: time is
 * the leader's stamp of the entry being applied.
 *
 * A claim belongs to a session and carries a fence (the log index of the
 * entry that granted it), so an ack or nack from an older claim of the same
 * item is refused. A claim ends by ack, nack, the end of its session, or the
 * leader's `q-expire` once its visibility passed on the leader's clock (see
 * LeaderClaims): never by a node reading its own clock while applying.
 *
 * Workers that found the queue empty wait here, in FIFO order, so an enqueue
 * hands its item to a waiting worker in the same entry: no polling, and no
 * herd of workers racing for one item.
 */
import { EventEmitter } from 'node:events'
import { ReadyLine } from './ready-line.js'

/** Items (ready, delayed and claimed) one queue may hold; an enqueue beyond is refused. */
export const MAX_QUEUE_ITEMS = 1_000_000

export interface Claim {
  readonly session: string
  /** The waiting call or worker it was granted to. */
  readonly owner: string
  readonly fence: number
  readonly claimedAt: number
  visibilityMs: number
  /** Granted to a waiter: the worker confirms (extends) it before it starts. */
  readonly waited: boolean
}

export interface QueueItem {
  readonly id: string
  readonly payload: Uint8Array
  readonly enqueuedAt: number
  availableAt: number
  /** Claims so far, this one included. */
  attempt: number
  maxAttempts: number
  claim: Claim | null
  lastError: string | null
}

export interface DeadLetter {
  readonly id: string
  readonly payload: Uint8Array
  readonly enqueuedAt: number
  readonly deadAt: number
  readonly attempts: number
  readonly lastError: string | null
}

export interface QueueWaiter {
  readonly session: string
  readonly owner: string
  readonly visibilityMs: number
  /** How many more items it takes. */
  capacity: number
  maxAttempts: number | null
}

export interface GrantedItem {
  readonly id: string
  readonly payload: Uint8Array
  readonly fence: number
  readonly attempt: number
  readonly enqueuedAt: number
}

interface QueueRecord {
  readonly name: string
  readonly items: Map<string, QueueItem>
  /** Ids ready to claim, in the order they became ready. */
  readonly ready: ReadyLine
  /** Ids with a live claim: what the leader's expiry clock walks. */
  readonly claimed: Set<string>
  /** Ids waiting for their availableAt, sorted by it. */
  delayed: string[]
  readonly dead: Map<string, DeadLetter>
  waiters: QueueWaiter[]
  acked: number
  nextAuto: number
}

export interface QueueEvents {
  /** Items handed to a waiter (the claimer's node starts them once confirmed). */
  claimed: [{ queue: string, session: string, owner: string, items: GrantedItem[] }]
  /** A claim ended without an ack (nack, expiry, its session ended): the claimer must stop. */
  'claim-ended': [{ queue: string, id: string, fence: number, session: string, reason: 'nack' | 'expired' | 'session-ended' | 'returned' | 'purged' }]
  /** A claim's visibility restarted (granted or extended): the leader restarts its clock. The claim object lives as long as the claim. */
  'claim-heard': [Readonly<Claim>]
}

export type QueueOpResult =
  | { readonly ok: true, readonly value?: unknown }
  | { readonly ok: false, readonly error: 'claim-expired' | 'not-found' | 'full' | 'invalid', readonly message: string }

export interface ApplyContext {
  readonly session: string
  readonly index: number
  readonly stamp: number
}

export class QueueTable extends EventEmitter<QueueEvents> {
  private queues = new Map<string, QueueRecord>()

  names (): string[] {
    return [...this.queues.keys()]
  }

  item (queue: string, id: string): Readonly<QueueItem> | undefined {
    return this.queues.get(queue)?.items.get(id)
  }

  /** Every live claim, for the leader's expiry clock. */
  * claims (): IterableIterator<{ queue: string, item: Readonly<QueueItem>, claim: Readonly<Claim> }> {
    for (const q of this.queues.values()) {
      for (const id of q.claimed) {
        const item = q.items.get(id) as QueueItem
        yield { queue: q.name, item, claim: item.claim as Claim }
      }
    }
  }

  /** Queues that have waiters and a delayed item due at or before `now` (the leader wakes them). */
  dueQueues (now: number): string[] {
    const out: string[] = []
    for (const q of this.queues.values()) {
      if (q.waiters.length > 0 && q.delayed.length > 0 && (q.items.get(q.delayed[0]) as QueueItem).availableAt <= now) out.push(q.name)
    }
    return out
  }

  /** Earliest availableAt of a delayed item in a queue with waiters, or null. */
  nextDue (): number | null {
    let min: number | null = null
    for (const q of this.queues.values()) {
      if (q.waiters.length === 0 || q.delayed.length === 0) continue
      const at = (q.items.get(q.delayed[0]) as QueueItem).availableAt
      if (min === null || at < min) min = at
    }
    return min
  }

  stats (queue: string, now: number): { depth: number, ready: number, delayed: number, inFlight: number, deadLetters: number, waiters: number, acked: number, oldestAgeMs: number | null } {
    const q = this.queues.get(queue)
    if (q === undefined) return { depth: 0, ready: 0, delayed: 0, inFlight: 0, deadLetters: 0, waiters: 0, acked: 0, oldestAgeMs: null }
    // A read must not move items: only applied entries may change the state.
    const due = q.delayed.filter(id => (q.items.get(id) as QueueItem).availableAt <= now)
    let oldest: number | null = null
    for (const id of [...q.ready.toArray(), ...due]) {
      const at = (q.items.get(id) as QueueItem).enqueuedAt
      if (oldest === null || at < oldest) oldest = at
    }
    return {
      depth: q.ready.size + q.delayed.length,
      ready: q.ready.size + due.length,
      delayed: q.delayed.length - due.length,
      inFlight: q.claimed.size,
      deadLetters: q.dead.size,
      waiters: q.waiters.reduce((n, w) => n + w.capacity, 0),
      acked: q.acked,
      oldestAgeMs: oldest === null ? null : Math.max(0, now - oldest)
    }
  }

  deadLetters (queue: string): DeadLetter[] {
    return [...(this.queues.get(queue)?.dead.values() ?? [])]
  }

  enqueue (queue: string, item: { id: string | null, payload: Uint8Array, delayMs: number, maxAttempts: number }, ctx: ApplyContext): QueueOpResult {
    const q = this.record(queue)
    const id = item.id ?? `${ctx.index}.${q.nextAuto++}`
    if (q.items.has(id) || q.dead.has(id)) return { ok: true, value: { id, duplicate: true } }
    if (q.items.size >= MAX_QUEUE_ITEMS) return { ok: false, error: 'full', message: `queue ${queue} holds ${q.items.size} items (limit ${MAX_QUEUE_ITEMS})` }
    const rec: QueueItem = { id, payload: item.payload, enqueuedAt: ctx.stamp, availableAt: ctx.stamp + item.delayMs, attempt: 0, maxAttempts: item.maxAttempts, claim: null, lastError: null }
    q.items.set(id, rec)
    this.makeAvailable(q, rec, ctx.stamp)
    this.serveWaiters(q, ctx)
    return { ok: true, value: { id, duplicate: false } }
  }

  /**
   * Takes up to `max` ready items now; with `wait`, the rest of `max` waits
   * here for items to come, at the back of the line: a worker asks for one
   * more item each time a slot frees, and that slot waits behind the slots
   * of workers already waiting, so items spread over idle workers instead
   * of going to whichever waited first. Asks of one owner that follow each
   * other (slots freed in one batch) add to one wait.
   */
  claim (queue: string, req: { owner: string, visibilityMs: number, max: number, wait: boolean, maxAttempts: number | null }, ctx: ApplyContext): QueueOpResult {
    const q = this.record(queue)
    this.promote(q, ctx.stamp)
    const items: GrantedItem[] = []
    // Waiters came first: a claim does not jump the line.
    if (q.waiters.length === 0) {
      while (items.length < req.max && q.ready.size > 0) items.push(this.grant(q, this.takeReady(q), ctx.session, req.owner, req.visibilityMs, req.maxAttempts, false, ctx))
    }
    const rest = req.max - items.length
    if (req.wait && rest > 0) {
      const w = q.waiters.at(-1)
      if (w !== undefined && w.session === ctx.session && w.owner === req.owner) w.capacity += rest
      else q.waiters.push({ session: ctx.session, owner: req.owner, visibilityMs: req.visibilityMs, capacity: rest, maxAttempts: req.maxAttempts })
    }
    return { ok: true, value: { items } }
  }

  /** Stops waiting; items granted before this applied stay claimed (the worker returns them). */
  unwait (queue: string, owner: string, ctx: ApplyContext): QueueOpResult {
    const q = this.queues.get(queue)
    if (q !== undefined) q.waiters = q.waiters.filter(w => !(w.session === ctx.session && w.owner === owner))
    return { ok: true }
  }

  ack (queue: string, id: string, fence: number, ctx: ApplyContext): QueueOpResult {
    const q = this.queues.get(queue)
    const item = q?.items.get(id)
    const bad = this.checkClaim(queue, id, item, fence, ctx)
    if (bad !== null) return bad
    ;(q as QueueRecord).items.delete(id)
    ;(q as QueueRecord).claimed.delete(id)
    ;(q as QueueRecord).acked++
    return { ok: true }
  }

  /** Gives the item back: after `delayMs`, or to the dead letters once its attempts are spent. */
  nack (queue: string, id: string, fence: number, delayMs: number, error: string | null, ctx: ApplyContext): QueueOpResult {
    const q = this.queues.get(queue)
    const item = q?.items.get(id)
    const bad = this.checkClaim(queue, id, item, fence, ctx)
    if (bad !== null) return bad
    const it = item as QueueItem
    it.lastError = error
    this.endClaim(q as QueueRecord, it, 'nack', delayMs, ctx)
    this.serveWaiters(q as QueueRecord, ctx)
    return { ok: true }
  }

  /** Gives the item back untouched, first in line, its attempt not counted (a worker stopping before it started). */
  giveBack (queue: string, id: string, fence: number, ctx: ApplyContext): QueueOpResult {
    const q = this.queues.get(queue)
    const item = q?.items.get(id)
    const bad = this.checkClaim(queue, id, item, fence, ctx)
    if (bad !== null) return bad
    const it = item as QueueItem
    const qr = q as QueueRecord
    const claim = it.claim as Claim
    it.claim = null
    qr.claimed.delete(id)
    it.attempt = Math.max(0, it.attempt - 1)
    it.availableAt = ctx.stamp
    qr.ready.unshift(id)
    this.emit('claim-ended', { queue, id, fence: claim.fence, session: claim.session, reason: 'returned' })
    this.serveWaiters(qr, ctx)
    return { ok: true }
  }

  /** Restarts the claim's visibility (also the confirmation of a waiter's grant). */
  extend (queue: string, id: string, fence: number, visibilityMs: number, ctx: ApplyContext): QueueOpResult {
    const item = this.queues.get(queue)?.items.get(id)
    const bad = this.checkClaim(queue, id, item, fence, ctx)
    if (bad !== null) return bad
    const claim = (item as QueueItem & { claim: Claim }).claim
    claim.visibilityMs = visibilityMs
    this.emit('claim-heard', claim)
    return { ok: true }
  }

  /** Leader only: the claim's visibility passed on the leader's clock. */
  expire (queue: string, id: string, fence: number, ctx: Omit<ApplyContext, 'session'>): QueueOpResult {
    const q = this.queues.get(queue)
    const item = q?.items.get(id)
    if (q === undefined || item?.claim?.fence !== fence) return { ok: true }
    item.lastError = 'visibility timeout'
    this.endClaim(q, item, 'expired', 0, { ...ctx, session: '' })
    this.serveWaiters(q, { ...ctx, session: '' })
    return { ok: true }
  }

  /** Leader only: hands due delayed items to waiters. */
  wake (queue: string, ctx: Omit<ApplyContext, 'session'>): QueueOpResult {
    const q = this.queues.get(queue)
    if (q !== undefined) this.serveWaiters(q, { ...ctx, session: '' })
    return { ok: true }
  }

  /** Dead letters back into the queue (all, or the listed ids), attempts reset. */
  requeueDead (queue: string, ids: string[] | null, ctx: ApplyContext): QueueOpResult {
    const q = this.queues.get(queue)
    if (q === undefined) return { ok: true, value: { count: 0 } }
    let count = 0
    for (const id of ids ?? [...q.dead.keys()]) {
      const d = q.dead.get(id)
      if (d === undefined || q.items.has(id)) continue
      q.dead.delete(id)
      const rec: QueueItem = { id, payload: d.payload, enqueuedAt: d.enqueuedAt, availableAt: ctx.stamp, attempt: 0, maxAttempts: Math.max(1, d.attempts), claim: null, lastError: d.lastError }
      q.items.set(id, rec)
      this.makeAvailable(q, rec, ctx.stamp)
      count++
    }
    this.serveWaiters(q, ctx)
    return { ok: true, value: { count } }
  }

  purgeDead (queue: string, ids: string[] | null): QueueOpResult {
    const q = this.queues.get(queue)
    if (q === undefined) return { ok: true, value: { count: 0 } }
    let count = 0
    for (const id of ids ?? [...q.dead.keys()]) if (q.dead.delete(id)) count++
    return { ok: true, value: { count } }
  }

  /** The session ended: its claims go back (or to the dead letters), its waiters leave. */
  endSession (session: string, ctx: Omit<ApplyContext, 'session'>): void {
    for (const q of this.queues.values()) {
      q.waiters = q.waiters.filter(w => w.session !== session)
      for (const item of [...q.items.values()]) {
        if (item.claim?.session !== session) continue
        item.lastError = 'the claimer\'s session ended'
        this.endClaim(q, item, 'session-ended', 0, { ...ctx, session: '' })
      }
      this.serveWaiters(q, { ...ctx, session: '' })
    }
  }

  toJSON (): unknown[] {
    return [...this.queues.values()].map(q => ({
      name: q.name,
      items: [...q.items.values()],
      ready: q.ready.toArray(),
      delayed: q.delayed,
      dead: [...q.dead.values()],
      waiters: q.waiters,
      acked: q.acked,
      nextAuto: q.nextAuto
    }))
  }

  restore (raw: unknown[]): void {
    this.queues = new Map()
    for (const r of raw as Array<{ name: string, items: QueueItem[], ready: string[], delayed: string[], dead: DeadLetter[], waiters: QueueWaiter[], acked: number, nextAuto: number }>) {
      this.queues.set(r.name, {
        name: r.name,
        items: new Map(r.items.map(i => [i.id, i])),
        ready: new ReadyLine(r.ready),
        claimed: new Set(r.items.filter(i => i.claim !== null).map(i => i.id)),
        delayed: r.delayed,
        dead: new Map(r.dead.map(d => [d.id, d])),
        waiters: r.waiters,
        acked: r.acked,
        nextAuto: r.nextAuto
      })
    }
  }

  private record (name: string): QueueRecord {
    let q = this.queues.get(name)
    if (q === undefined) {
      q = { name, items: new Map(), ready: new ReadyLine(), claimed: new Set(), delayed: [], dead: new Map(), waiters: [], acked: 0, nextAuto: 0 }
      this.queues.set(name, q)
    }
    return q
  }

  private checkClaim (queue: string, id: string, item: QueueItem | undefined, fence: number, ctx: ApplyContext): QueueOpResult | null {
    if (item === undefined) return { ok: false, error: 'claim-expired', message: `item ${id} of queue ${queue} is no longer claimed (acked, expired or dead-lettered)` }
    if (item.claim === null || item.claim.fence !== fence || item.claim.session !== ctx.session) {
      return { ok: false, error: 'claim-expired', message: `the claim of item ${id} of queue ${queue} with fence ${fence} expired; the item went back to the queue` }
    }
    return null
  }

  private takeReady (q: QueueRecord): QueueItem {
    return q.items.get(q.ready.shift() as string) as QueueItem
  }

  private grant (q: QueueRecord, item: QueueItem, session: string, owner: string, visibilityMs: number, maxAttempts: number | null, waited: boolean, ctx: ApplyContext): GrantedItem {
    q.claimed.add(item.id)
    item.attempt++
    if (maxAttempts !== null) item.maxAttempts = maxAttempts
    item.claim = { session, owner, fence: ctx.index, claimedAt: ctx.stamp, visibilityMs, waited }
    this.emit('claim-heard', item.claim)
    return { id: item.id, payload: item.payload, fence: ctx.index, attempt: item.attempt, enqueuedAt: item.enqueuedAt }
  }

  /** Ready items go to waiting slots in the order they began to wait. */
  private serveWaiters (q: QueueRecord, ctx: ApplyContext): void {
    this.promote(q, ctx.stamp)
    while (q.waiters.length > 0 && q.ready.size > 0) {
      const w = q.waiters[0]
      const items: GrantedItem[] = []
      while (w.capacity > 0 && q.ready.size > 0) {
        items.push(this.grant(q, this.takeReady(q), w.session, w.owner, w.visibilityMs, w.maxAttempts, true, ctx))
        w.capacity--
      }
      if (w.capacity === 0) q.waiters.shift()
      this.emit('claimed', { queue: q.name, session: w.session, owner: w.owner, items })
    }
  }

  private endClaim (q: QueueRecord, item: QueueItem, reason: 'nack' | 'expired' | 'session-ended', delayMs: number, ctx: ApplyContext): void {
    const claim = item.claim as Claim
    item.claim = null
    q.claimed.delete(item.id)
    if (item.attempt >= item.maxAttempts) {
      q.items.delete(item.id)
      q.dead.set(item.id, { id: item.id, payload: item.payload, enqueuedAt: item.enqueuedAt, deadAt: ctx.stamp, attempts: item.attempt, lastError: item.lastError })
    } else {
      item.availableAt = ctx.stamp + delayMs
      this.makeAvailable(q, item, ctx.stamp)
    }
    this.emit('claim-ended', { queue: q.name, id: item.id, fence: claim.fence, session: claim.session, reason })
  }

  private makeAvailable (q: QueueRecord, item: QueueItem, now: number): void {
    if (item.availableAt <= now && q.delayed.length === 0) {
      q.ready.push(item.id)
      return
    }
    // Sorted insert, after items due at the same time (FIFO among equals).
    let lo = 0
    let hi = q.delayed.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((q.items.get(q.delayed[mid]) as QueueItem).availableAt <= item.availableAt) lo = mid + 1
      else hi = mid
    }
    q.delayed.splice(lo, 0, item.id)
    this.promote(q, now)
  }

  private promote (q: QueueRecord, now: number): void {
    let n = 0
    while (n < q.delayed.length && (q.items.get(q.delayed[n]) as QueueItem).availableAt <= now) q.ready.push(q.delayed[n++])
    if (n > 0) q.delayed.splice(0, n)
  }
}
