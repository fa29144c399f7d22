/**
 * Property tests of the coordination state machine, in the spirit of etcd's
 * quorum/quick_test.go: random logs from several clients (re-sent commands,
 * lo out of range, expiries, stamps that go back, undecodable entries,
 * snapshots at random points) are applied to CoordinationState and to a
 * naive model written here, and checked after every entry against the model
 * and against the invariants of sessions and locks. The seed is fixed; a
 * failure prints fast-check's counterexample and the entry that broke.
 */
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { encodeEnvelope, splitEntry, stampEntry, type Command, type CommandResult, type Envelope, type LockKind } from '../lib/coordination/commands.js'
import type { Holder, Waiter } from '../lib/coordination/lock-table.js'
import { CoordinationState, type SessionRecord } from '../lib/coordination/state.js'
import { EntryType, type Entry } from '../raft/index.js'
import { tell } from './helpers/coordination-log.js'

const seed = 20261204

// ---- the model: the rules restated as plainly as possible -------------------------------

interface ModelLock { kind: LockKind, name: string, holder: Holder | null, waiters: Waiter[] }
interface ModelSession extends SessionRecord {
  /** Every answer ever given; a seq below `lo` was heard by the client and is never run again. */
  answers: Map<number, CommandResult>
  lo: number
}

class Model {
  sessions: ModelSession[] = []
  locks: ModelLock[] = []
  stamp = 0
  rejected = 0

  apply (e: Entry): CommandResult {
    if (e.type !== EntryType.Normal) return { ok: true }
    let stamp: number, env: Envelope
    try {
      ({ stamp, envelope: env } = splitEntry(e.data))
    } catch {
      this.rejected++
      return { ok: false, error: 'invalid', message: '' }
    }
    this.stamp = Math.max(this.stamp, stamp)
    const { c, s, lo, cmd } = env
    if (cmd.op === 'expire') {
      this.end(cmd.session, e.index)
      return { ok: true }
    }
    if (cmd.op === 'open') {
      if (c === '') return { ok: false, error: 'invalid', message: '' }
      if (this.session(c) === undefined) {
        for (const old of this.sessions.filter(x => x.node === cmd.node)) this.end(old.id, e.index)
        this.sessions.push({ id: c, node: cmd.node, ttlMs: cmd.ttlMs, openedAt: this.stamp, openedIndex: e.index, answers: new Map(), lo: 0 })
      }
      this.session(c)?.answers.set(s, { ok: true })
      return { ok: true }
    }
    const session = this.session(c)
    if (session === undefined) return { ok: false, error: 'no-session', message: '' }
    if (s < session.lo) return { ok: false, error: 'invalid', message: '' }
    const before = session.answers.get(s)
    if (before !== undefined) return before
    session.lo = Math.max(session.lo, Math.min(lo, s))
    const result = this.run(session, cmd, e.index)
    session.answers.set(s, result)
    return result
  }

  private run (session: ModelSession, cmd: Command, index: number): CommandResult {
    if (cmd.op === 'close') {
      this.end(session.id, index)
      return { ok: true }
    }
    if (cmd.op !== 'acquire' && cmd.op !== 'release') throw new Error('the generator proposes no such command')
    const who = { session: session.id, owner: cmd.owner }
    const is = (x: { session: string, owner: string } | null): boolean => x?.session === who.session && x.owner === who.owner
    let lock = this.locks.find(l => l.kind === cmd.kind && l.name === cmd.name)
    if (cmd.op === 'release') {
      if (lock === undefined) return { ok: true }
      lock.waiters = lock.waiters.filter(w => !is(w))
      if (is(lock.holder)) this.handOn(lock, index)
      return { ok: true }
    }
    if (lock === undefined) {
      lock = { kind: cmd.kind, name: cmd.name, holder: null, waiters: [] }
      this.locks.push(lock)
    }
    if (lock.holder !== null && is(lock.holder)) return { ok: true, granted: true, queued: false, fence: lock.holder.fence }
    if (lock.waiters.some(is)) return { ok: true, granted: false, queued: true }
    if (lock.holder === null) {
      lock.holder = { ...who, fence: index, grantedAt: this.stamp }
      return { ok: true, granted: true, queued: false, fence: index }
    }
    if (cmd.wait) lock.waiters.push({ ...who, since: this.stamp })
    return { ok: true, granted: false, queued: cmd.wait }
  }

  /** The first waiter, if any, takes the lock, fenced with this entry's index. */
  private handOn (lock: ModelLock, index: number): void {
    const next = lock.waiters.shift()
    lock.holder = next === undefined ? null : { session: next.session, owner: next.owner, fence: index, grantedAt: this.stamp }
    if (lock.holder === null && lock.waiters.length === 0) this.locks = this.locks.filter(l => l !== lock)
  }

  private end (id: string, index: number): void {
    if (this.session(id) === undefined) return
    this.sessions = this.sessions.filter(x => x.id !== id)
    for (const lock of [...this.locks]) {
      lock.waiters = lock.waiters.filter(w => w.session !== id)
      if (lock.holder?.session === id) this.handOn(lock, index)
    }
  }

  private session (id: string): ModelSession | undefined {
    return this.sessions.find(x => x.id === id)
  }
}

// ---- random logs ----------------------------------------------------------------------------

/** c0 and c1 are two incarnations of node n1, so opening one replaces the other; '' is no session. */
const clients = [{ id: 'c0', node: 'n1' }, { id: 'c1', node: 'n1' }, { id: 'c2', node: 'n2' }, { id: '', node: 'n3' }]
const kinds = fc.constantFrom<LockKind>('lock', 'election')
const names = fc.constantFrom('a', 'b')
const owners = fc.constantFrom('o1', 'o2')

/** Its node is filled in with the client's. */
const open: Command = { op: 'open', node: '', ttlMs: 10_000 }
const close: Command = { op: 'close' }
const commands: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.constant(open), weight: 2 },
  { arbitrary: fc.constant(close), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('acquire' as const), kind: kinds, name: names, owner: owners, wait: fc.boolean() }), weight: 5 },
  { arbitrary: fc.record({ op: fc.constant('release' as const), kind: kinds, name: names, owner: owners }), weight: 4 }
)

type Step =
  /** A client's next command; lo is its seq moved by `loShift` (above the seq is a client bug). */
  | { readonly t: 'send', readonly client: number, readonly cmd: Command, readonly loShift: number, readonly dt: number }
  /** A command committed again: the pick-th envelope sent so far, unchanged. */
  | { readonly t: 'resend', readonly pick: number, readonly dt: number }
  | { readonly t: 'expire', readonly client: number, readonly dt: number }
  | { readonly t: 'garbage', readonly data: Uint8Array }
  | { readonly t: 'config' }
  /** The restored replica is replaced by a fresh instance restored from its snapshot. */
  | { readonly t: 'snapshot' }

/** Leader stamps move on by up to 100 ms, and sometimes back (a new leader's clock is behind). */
const dt = fc.integer({ min: -60, max: 100 })
const steps: fc.Arbitrary<Step[]> = fc.array(fc.oneof(
  { arbitrary: fc.record({ t: fc.constant('send' as const), client: fc.nat(clients.length - 1), cmd: commands, loShift: fc.integer({ min: -3, max: 2 }), dt }), weight: 12 },
  { arbitrary: fc.record({ t: fc.constant('resend' as const), pick: fc.nat(), dt }), weight: 4 },
  { arbitrary: fc.record({ t: fc.constant('expire' as const), client: fc.nat(clients.length - 1), dt }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant('garbage' as const), data: fc.uint8Array({ maxLength: 24 }) }), weight: 1 },
  { arbitrary: fc.constant({ t: 'config' as const }), weight: 1 },
  { arbitrary: fc.constant({ t: 'snapshot' as const }), weight: 2 }
), { maxLength: 80, size: 'max' })

/** Turns steps into entries, numbering each client's commands as its proposer would. */
function entries (plan: readonly Step[]): Array<Entry | 'snapshot'> {
  const seqs = clients.map(() => 0)
  const sent: Envelope[] = []
  let clock = 1_000_000
  let index = 0
  const normal = (data: Uint8Array): Entry => ({ index: ++index, term: 1, type: EntryType.Normal, data })
  const stamped = (env: Envelope, by: number): Entry => normal(stampEntry(clock += by, encodeEnvelope(env)))
  return plan.map(step => {
    switch (step.t) {
      case 'send': {
        const { id, node } = clients[step.client]
        const s = seqs[step.client]++
        const cmd: Command = step.cmd.op === 'open' ? { ...step.cmd, node } : step.cmd
        const env: Envelope = { c: id, s, lo: Math.max(0, s + step.loShift), cmd }
        sent.push(env)
        return stamped(env, step.dt)
      }
      case 'resend':
        return sent.length === 0 ? { index: ++index, term: 1, type: EntryType.Noop, data: new Uint8Array() } : stamped(sent[step.pick % sent.length], step.dt)
      case 'expire':
        return stamped({ c: '', s: 0, lo: 0, cmd: { op: 'expire', session: clients[step.client].id || 'gone' } }, step.dt)
      case 'garbage':
        return normal(step.data)
      case 'config':
        return { index: ++index, term: 1, type: EntryType.Config, data: new Uint8Array([1]) }
      case 'snapshot':
        return 'snapshot'
    }
  })
}

// ---- the checks -------------------------------------------------------------------------------

/** What the model and the implementation must agree on; failure messages are prose, not compared. */
const outcome = (r: CommandResult): object => r.ok ? r : { ok: false, error: r.error }
const stateOf = (sm: CoordinationState | Model): object => {
  const sessions = sm instanceof Model ? sm.sessions.map(({ answers: _a, lo: _l, ...s }) => s) : sm.sessionList()
  const locks = sm instanceof Model ? sm.locks : sm.lockList()
  return { now: sm instanceof Model ? sm.stamp : sm.now, rejected: sm instanceof Model ? sm.rejected : sm.rejectedEntries, sessions, locks }
}

/** The invariants that hold after every entry, whatever came before. */
function checkInvariants (sm: CoordinationState, index: number, lastFence: Map<string, number>, grants: Array<{ key: string, fence: number }>): string | null {
  for (const g of grants) {
    if (g.fence !== index) return `${g.key}: granted with fence ${g.fence}, not the index of the granting entry`
    const last = lastFence.get(g.key)
    if (last !== undefined && g.fence <= last) return `${g.key}: fence ${g.fence} granted after ${last}`
    lastFence.set(g.key, g.fence)
  }
  const open = new Set(sm.sessionList().map(s => s.id))
  const keys = new Set<string>()
  for (const r of sm.lockList()) {
    const key = `${r.kind} ${r.name}`
    if (keys.has(key)) return `${key} has two records: two holders`
    keys.add(key)
    const lineUp = [...(r.holder === null ? [] : [r.holder]), ...r.waiters].map(o => `${o.session}/${o.owner}`)
    if (new Set(lineUp).size !== lineUp.length) return `${key}: an owner is both holder and waiter, or waits twice: ${lineUp.join(', ')}`
    if (r.holder === null) return `${key}: an idle record stays, or a waiter was left behind a free lock`
    if (!open.has(r.holder.session)) return `${key}: held by ${r.holder.session}, whose session is not open`
    const waitingClosed = r.waiters.find(w => !open.has(w.session))
    if (waitingClosed !== undefined) return `${key}: ${waitingClosed.session} still waits, its session is not open`
    if (r.waiters.some((w, i) => i > 0 && w.since < r.waiters[i - 1].since)) return `${key}: waiters are not in the order they queued`
    if (r.holder.fence !== lastFence.get(key)) return `${key}: holder's fence ${r.holder.fence} is not that of the last grant ${lastFence.get(key)}`
  }
  return null
}

function replay (plan: readonly Step[]): void {
  const model = new Model()
  const main = new CoordinationState()
  const twin = new CoordinationState()
  let replica = new CoordinationState()
  const mainStory: string[] = []
  const replicaStory: string[] = []
  tell(main, mainStory)
  tell(replica, replicaStory)
  const grants: Array<{ key: string, fence: number }> = []
  main.on('granted', g => grants.push({ key: `${g.kind} ${g.name}`, fence: g.fence }))
  const lastFence = new Map<string, number>()
  for (const e of entries(plan)) {
    if (e === 'snapshot') {
      const fresh = new CoordinationState()
      fresh.restore(replica.snapshot())
      replica = fresh
      tell(replica, replicaStory)
      continue
    }
    const at = `after entry ${e.index}`
    mainStory.length = replicaStory.length = grants.length = 0
    const result = main.apply(e)
    const expected = model.apply(e)
    twin.apply(e)
    const replayed = replica.apply(e)
    if (!isDeepStrictEqual(outcome(result), outcome(expected))) throw new Error(`${at}: answered ${JSON.stringify(result)}, the model ${JSON.stringify(expected)}`)
    if (!isDeepStrictEqual(stateOf(main), stateOf(model))) throw new Error(`${at}: state ${JSON.stringify(stateOf(main))}, the model's ${JSON.stringify(stateOf(model))}`)
    const broken = checkInvariants(main, e.index, lastFence, grants)
    if (broken !== null) throw new Error(`${at}: ${broken}`)
    if (!isDeepStrictEqual(replayed, result)) throw new Error(`${at}: the restored replica answered ${JSON.stringify(replayed)}, not ${JSON.stringify(result)}`)
    if (!isDeepStrictEqual(replicaStory, mainStory)) throw new Error(`${at}: the restored replica told ${JSON.stringify(replicaStory)}, not ${JSON.stringify(mainStory)}`)
    if (!Buffer.from(replica.snapshot()).equals(main.snapshot())) throw new Error(`${at}: the restored replica's snapshot differs`)
  }
  if (!Buffer.from(twin.snapshot()).equals(main.snapshot())) throw new Error('two instances fed the same entries differ')
}

function holds (t: Test, logs: fc.Arbitrary<Step[]>, numRuns: number): void {
  const out = fc.check(fc.property(logs, plan => { replay(plan) }), { seed, numRuns })
  t.notOk(out.failed, 'model, invariants, determinism and snapshots', { broke: String(out.errorInstance), report: fc.defaultReportMessage(out) })
}

t.test('random logs from several clients agree with the model and keep every invariant', t => {
  holds(t, steps, 400)
  t.end()
})

t.test('contended logs: three sessions\' owners queue on two locks, and sessions end while holding both', t => {
  // The same checks with waiting acquires only and no garbage, so queues grow long and FIFO, fences and the
  // hand-over of everything a session held are exercised hard.
  const contended = fc.array(fc.oneof(
    { arbitrary: fc.record({ t: fc.constant('send' as const), client: fc.nat(2), cmd: fc.oneof(
      { arbitrary: fc.constant(open), weight: 1 },
      { arbitrary: fc.record({ op: fc.constant('acquire' as const), kind: fc.constant<LockKind>('lock'), name: names, owner: owners, wait: fc.constant(true) }), weight: 6 },
      { arbitrary: fc.record({ op: fc.constant('release' as const), kind: fc.constant<LockKind>('lock'), name: names, owner: owners }), weight: 4 }
    ), loShift: fc.constant(0), dt }), weight: 10 },
    { arbitrary: fc.record({ t: fc.constant('resend' as const), pick: fc.nat(), dt }), weight: 2 },
    { arbitrary: fc.record({ t: fc.constant('send' as const), client: fc.nat(2), cmd: fc.constant(close), loShift: fc.constant(0), dt }), weight: 1 },
    { arbitrary: fc.record({ t: fc.constant('expire' as const), client: fc.nat(2), dt }), weight: 1 },
    { arbitrary: fc.constant({ t: 'snapshot' as const }), weight: 2 }
  ), { maxLength: 80, size: 'max' })
  holds(t, contended, 200)
  t.end()
})
