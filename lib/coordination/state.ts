/**
 * The coordination state machine: sessions, locks and elections, driven
 * only by committed log entries. It is pure and deterministic (no clock,
 * no randomness, no I/O): time is the leader's stamp on each entry, and a
 * session ends only by an entry (close, a newer session of the same node,
 * or the leader's expire), never by a node reading its own clock.
 *
 * What it tells the node it runs on (grants, releases, answers to the
 * node's own commands) goes to one observer, called synchronously during
 * apply, so the node sees changes in log order.
 */
import { EventEmitter } from 'node:events'
import { Packr } from 'msgpackr'
import { EntryType, type Entry, type StateMachine } from '../../raft/index.js'
import { InvalidCommandError, LEADER_OPS, splitEntry, type Command, type CommandResult, type Envelope, type LockKind, type SingleCommand } from './commands.js'
import { LockTable, type Grant, type LockRecord } from './lock-table.js'
import { QueueTable } from './queue-table.js'
import { FileTable, type StoredFile } from './file-table.js'
import { ScheduleTable } from './schedule-table.js'

/** Answers a session keeps for re-sent commands; more than this many outstanding is a client bug. */
const MAX_ANSWERS_PER_SESSION = 4096

export interface SessionRecord {
  readonly id: string
  readonly node: string
  readonly ttlMs: number
  readonly openedAt: number
  /** Index of the entry that opened it. */
  readonly openedIndex: number
}

export type SessionEndReason = 'closed' | 'expired' | 'replaced'

export interface CoordinationEvents {
  /** A command of `client` was applied (or recognised as a repeat) with this result. */
  answer: [{ client: string, seq: number, result: CommandResult, index: number }]
  granted: [Grant]
  released: [{ kind: LockKind, name: string, session: string, owner: string }]
  'session-opened': [SessionRecord]
  'session-ended': [{ session: string, node: string, reason: SessionEndReason }]
  /** An ordered event, applied at `index` (its place in the one total order). */
  ordered: [{ topic: string, payload: Uint8Array, node: string, index: number }]
  /** The whole state was replaced by a snapshot: observers must re-read it. */
  restored: []
}

interface SessionState extends SessionRecord {
  answers: Map<number, CommandResult>
  /** Highest `lo` applied: commands below it were answered, and a late copy of one must not run again. */
  lo: number
}

const packr = new Packr({ useRecords: false, moreTypes: false })

export class CoordinationState extends EventEmitter<CoordinationEvents> implements StateMachine<CommandResult> {
  private sessions = new Map<string, SessionState>()
  private locks = new LockTable()
  /** Queues; observers listen on it directly (claimed, claim-ended, ...). */
  readonly queues = new QueueTable()
  /** Scheduled tasks; observers listen on it directly (assigned, finished). */
  readonly schedules = new ScheduleTable()
  /** The replicated file store; observers listen on it directly (changed). */
  readonly files = new FileTable()
  private stamp = 0
  /** Entries whose data did not decode; every node counts the same ones. */
  private rejected = 0

  /** Latest leader stamp applied (ms since the epoch). */
  get now (): number {
    return this.stamp
  }

  get rejectedEntries (): number {
    return this.rejected
  }

  session (id: string): SessionRecord | undefined {
    return this.sessions.get(id)
  }

  /** The stored answer to a client's command, if the session still keeps it. */
  storedAnswer (client: string, seq: number): CommandResult | undefined {
    return this.sessions.get(client)?.answers.get(seq)
  }

  sessionList (): SessionRecord[] {
    return [...this.sessions.values()].map(publicSession)
  }

  lock (kind: LockKind, name: string): Readonly<LockRecord> | undefined {
    return this.locks.get(kind, name)
  }

  lockList (): ReadonlyArray<Readonly<LockRecord>> {
    return [...this.locks.all()]
  }

  /** The node whose session holds `name`, or null. */
  holderNode (kind: LockKind, name: string): string | null {
    const h = this.locks.get(kind, name)?.holder
    if (h === null || h === undefined) return null
    return this.sessions.get(h.session)?.node ?? null
  }

  apply (entry: Entry): CommandResult {
    if (entry.type !== EntryType.Normal) return { ok: true }
    let stamp: number
    let env: Envelope
    try {
      ({ stamp, envelope: env } = splitEntry(entry.data))
    } catch (err) {
      // Nothing we wrote fails to decode; a leader of another version might
      // have. Skipping it is the same decision on every node.
      this.rejected++
      return { ok: false, error: 'invalid', message: (err as InvalidCommandError).message }
    }
    this.stamp = Math.max(this.stamp, stamp)
    return this.applyEnvelope(env, entry.index)
  }

  private applyEnvelope (env: Envelope, index: number): CommandResult {
    const { c: client, s: seq, cmd } = env
    if (LEADER_OPS.has(cmd.op)) return this.leaderCommand(client, cmd, index)
    if (cmd.op === 'open') return this.answer(client, seq, this.open(client, cmd, index), index)
    const session = this.sessions.get(client)
    if (session === undefined) {
      const result: CommandResult = { ok: false, error: 'no-session', message: `session ${client} is not open (it expired or was closed)` }
      this.emit('answer', { client, seq, result, index })
      return result
    }
    const previous = session.answers.get(seq)
    if (previous !== undefined) {
      this.emit('answer', { client, seq, result: previous, index })
      return previous
    }
    if (seq < session.lo) {
      // Its answer was forgotten because the client had heard it; this is a
      // late copy of a retry, and running it again could re-take a released lock.
      const result: CommandResult = { ok: false, error: 'invalid', message: `command ${seq} of ${client} was answered already` }
      this.emit('answer', { client, seq, result, index })
      return result
    }
    // A command waits for its own answer, so a lo above its seq is a client bug:
    // clamped, it cannot forget this answer nor refuse the client's next commands.
    const lo = Math.min(env.lo, seq)
    // Every stored answer was at or above lo when stored, so only a higher lo forgets any.
    if (lo > session.lo) {
      session.lo = lo
      for (const s of session.answers.keys()) if (s < lo) session.answers.delete(s)
    }
    const result = this.execute(session, cmd, index)
    return this.answer(client, seq, result, index)
  }

  private answer (client: string, seq: number, result: CommandResult, index: number): CommandResult {
    const session = this.sessions.get(client)
    if (session !== undefined) {
      session.answers.set(seq, result)
      if (session.answers.size > MAX_ANSWERS_PER_SESSION) session.answers.delete(session.answers.keys().next().value as number)
    }
    this.emit('answer', { client, seq, result, index })
    return result
  }

  private open (client: string, cmd: Extract<Command, { op: 'open' }>, index: number): CommandResult {
    if (client === '') return { ok: false, error: 'invalid', message: 'a session needs a client id' }
    if (this.sessions.has(client)) return { ok: true }
    for (const s of [...this.sessions.values()]) if (s.node === cmd.node) this.endSession(s.id, 'replaced', index)
    const rec: SessionState = { id: client, node: cmd.node, ttlMs: cmd.ttlMs, openedAt: this.stamp, openedIndex: index, answers: new Map(), lo: 0 }
    this.sessions.set(client, rec)
    this.emit('session-opened', publicSession(rec))
    return { ok: true }
  }

  /** The leader's own commands: they belong to no session. */
  private leaderCommand (client: string, cmd: Command, index: number): CommandResult {
    if (client !== '') return { ok: false, error: 'invalid', message: `${cmd.op} is the leader's own command` }
    const ctx = { index, stamp: this.stamp }
    switch (cmd.op) {
      case 'expire':
        this.endSession(cmd.session, 'expired', index)
        return { ok: true }
      case 'q-expire': return this.queues.expire(cmd.queue, cmd.id, cmd.fence, ctx)
      case 'q-wake': return this.queues.wake(cmd.queue, ctx)
      case 'tick': return this.schedules.tick(cmd.task, cmd.scheduledAt, cmd.run, cmd.missed, ctx)
      default: return { ok: false, error: 'invalid', message: `${cmd.op} is not a leader command` }
    }
  }

  private execute (session: SessionState, cmd: Command, index: number): CommandResult {
    if (cmd.op === 'batch') {
      const results: CommandResult[] = []
      for (const sub of cmd.cmds) {
        const bad = sub.op === 'open' || LEADER_OPS.has(sub.op)
        results.push(bad ? { ok: false, error: 'invalid', message: `${sub.op} cannot be batched` } : this.executeOne(session, sub, index))
        if (!this.sessions.has(session.id)) break
      }
      return { ok: true, value: results }
    }
    return this.executeOne(session, cmd, index)
  }

  private executeOne (session: SessionState, cmd: SingleCommand, index: number): CommandResult {
    if (!this.sessions.has(session.id)) return { ok: false, error: 'no-session', message: `session ${session.id} ended earlier in this batch` }
    const ctx = { session: session.id, index, stamp: this.stamp }
    switch (cmd.op) {
      case 'close':
        this.endSession(session.id, 'closed', index)
        return { ok: true }
      case 'acquire': {
        const r = this.locks.acquire(cmd.kind, cmd.name, { session: session.id, owner: cmd.owner }, cmd.wait, index, this.stamp)
        if (r.granted && r.fence === index) this.emit('granted', { kind: cmd.kind, name: cmd.name, session: session.id, owner: cmd.owner, fence: index, grantedAt: this.stamp })
        return { ok: true, granted: r.granted, queued: r.queued, ...(r.fence === undefined ? {} : { fence: r.fence }) }
      }
      case 'release': {
        const before = this.locks.get(cmd.kind, cmd.name)?.holder
        const grant = this.locks.release(cmd.kind, cmd.name, { session: session.id, owner: cmd.owner }, index, this.stamp)
        if (before?.session === session.id && before.owner === cmd.owner) this.emit('released', { kind: cmd.kind, name: cmd.name, session: session.id, owner: cmd.owner })
        if (grant !== null) this.emit('granted', grant)
        return { ok: true }
      }
      case 'publish':
        this.emit('ordered', { topic: cmd.topic, payload: cmd.payload, node: session.node, index })
        return { ok: true }
      case 'enqueue': return this.queues.enqueue(cmd.queue, { id: cmd.id, payload: cmd.payload, delayMs: cmd.delayMs, maxAttempts: cmd.maxAttempts }, ctx)
      case 'claim': return this.queues.claim(cmd.queue, { owner: cmd.owner, visibilityMs: cmd.visibilityMs, max: cmd.max, wait: cmd.wait, maxAttempts: cmd.maxAttempts }, ctx)
      case 'unwait': return this.queues.unwait(cmd.queue, cmd.owner, ctx)
      case 'ack': return this.queues.ack(cmd.queue, cmd.id, cmd.fence, ctx)
      case 'nack': return this.queues.nack(cmd.queue, cmd.id, cmd.fence, cmd.delayMs, cmd.error, ctx)
      case 'give-back': return this.queues.giveBack(cmd.queue, cmd.id, cmd.fence, ctx)
      case 'extend': return this.queues.extend(cmd.queue, cmd.id, cmd.fence, cmd.visibilityMs, ctx)
      case 'requeue-dead': return this.queues.requeueDead(cmd.queue, cmd.ids, ctx)
      case 'purge-dead': return this.queues.purgeDead(cmd.queue, cmd.ids)
      case 'task-register': return this.schedules.register(cmd.task, cmd.spec, { session: session.id, node: session.node })
      case 'task-unregister': return this.schedules.unregister(cmd.task, session.id)
      case 'task-done': return this.schedules.done(cmd.task, cmd.fence, cmd.outcome, cmd.error, ctx)
      case 'file-put': return this.files.put(cmd.path, cmd.data, { ...ctx, node: session.node })
      case 'file-delete': return this.files.delete(cmd.path, ctx)
      case 'open':
      case 'expire':
      case 'q-expire':
      case 'q-wake':
      case 'tick':
        return { ok: false, error: 'invalid', message: `${cmd.op} is not a session command` }
      default:
        return assertNever(cmd)
    }
  }

  private endSession (id: string, reason: SessionEndReason, index: number): void {
    const s = this.sessions.get(id)
    if (s === undefined) return
    const held = [...this.locks.all()].filter(r => r.holder?.session === id).map(r => ({ kind: r.kind, name: r.name, owner: (r.holder as { owner: string }).owner }))
    const grants = this.locks.endSession(id, index, this.stamp)
    this.sessions.delete(id)
    this.queues.endSession(id, { index, stamp: this.stamp })
    this.schedules.endSession(id, this.stamp)
    for (const h of held) this.emit('released', { ...h, session: id })
    this.emit('session-ended', { session: id, node: s.node, reason })
    for (const g of grants) this.emit('granted', g)
  }

  snapshot (): Uint8Array {
    return packr.pack({
      v: 2,
      stamp: this.stamp,
      rejected: this.rejected,
      sessions: [...this.sessions.values()].map(s => ({ ...publicSession(s), lo: s.lo, answers: [...s.answers] })),
      locks: this.locks.toJSON(),
      queues: this.queues.toJSON(),
      schedules: this.schedules.toJSON(),
      files: this.files.toJSON()
    })
  }

  restore (data: Uint8Array): void {
    const raw = packr.unpack(data) as {
      v: number, stamp: number, rejected: number,
      sessions: Array<SessionRecord & { lo: number, answers: Array<[number, CommandResult]> }>, locks: LockRecord[], queues?: unknown[], schedules?: unknown[], files?: StoredFile[]
    }
    if (raw?.v !== 1 && raw?.v !== 2) throw new InvalidCommandError(`coordination snapshot of unknown version ${String(raw?.v)}`)
    this.stamp = raw.stamp
    this.rejected = raw.rejected
    this.sessions = new Map(raw.sessions.map(s => [s.id, { ...publicSession(s), lo: s.lo, answers: new Map(s.answers) }]))
    this.locks = LockTable.fromJSON(raw.locks)
    this.queues.restore(raw.queues ?? [])
    this.schedules.restore(raw.schedules ?? [])
    this.files.restore(raw.files ?? [])
    this.emit('restored')
  }
}

function publicSession (s: SessionRecord): SessionRecord {
  return { id: s.id, node: s.node, ttlMs: s.ttlMs, openedAt: s.openedAt, openedIndex: s.openedIndex }
}

function assertNever (x: never): never {
  throw new Error(`unhandled command ${JSON.stringify(x)}`)
}
