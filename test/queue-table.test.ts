/**
 * Queues in the coordination state machine, driven by committed entries:
 * claims are fenced and FIFO, waiting workers are handed items by the
 * enqueue itself, a claim ends only by an entry (ack, nack, expire, session
 * end), attempts run out into dead letters, and a snapshot taken anywhere
 * carries on identically. A random-log property checks the queue
 * guarantees against a plain model.
 */
import fc from 'fast-check'
import t from 'tap'
import { equals } from 'uint8arrays'
import { encodeEnvelope, stampEntry, type Command, type CommandResult } from '../lib/coordination/commands.js'
import type { GrantedItem } from '../lib/coordination/queue-table.js'
import { CoordinationLog } from './helpers/coordination-log.js'

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (b: Uint8Array): string => new TextDecoder().decode(b)

function items (r: CommandResult): GrantedItem[] {
  if (!r.ok) throw new Error(`refused: ${r.message}`)
  return (r.value as { items: GrantedItem[] }).items
}

function enqueue (id: string | null, delayMs = 0, maxAttempts = 3): Command {
  return { op: 'enqueue', queue: 'q', id, payload: bytes(id ?? 'auto'), delayMs, maxAttempts }
}

function claim (owner: string, { max = 1, wait = false, visibilityMs = 1000 } = {}): Command {
  return { op: 'claim', queue: 'q', owner, visibilityMs, max, wait, maxAttempts: null }
}

/** A log with two open sessions, on nodes n1 and n2. */
function twoSessions (): { log: CoordinationLog, a: ReturnType<CoordinationLog['client']>, b: ReturnType<CoordinationLog['client']> } {
  const log = new CoordinationLog()
  const a = log.client('n1/a', 'n1')
  const b = log.client('n2/b', 'n2')
  a.open()
  b.open()
  return { log, a, b }
}

t.test('items are claimed in FIFO order with the claim entry\'s index as fence; an ack removes the item once', async t => {
  const log = new CoordinationLog()
  const a = log.client('n1/a', 'n1')
  a.open()
  a.send(enqueue('x'))
  a.send(enqueue('y'))
  t.same(a.send(enqueue('x')), { ok: true, value: { id: 'x', duplicate: true } }, 'an id makes the enqueue idempotent')
  const got = items(a.send(claim('w', { max: 1 })))
  t.same(got.map(i => [i.id, text(i.payload), i.attempt, i.fence]), [['x', 'x', 1, log.index]])
  t.same(a.send({ op: 'ack', queue: 'q', id: 'x', fence: got[0].fence }), { ok: true })
  t.match(a.send({ op: 'ack', queue: 'q', id: 'x', fence: got[0].fence }), { ok: false, error: 'claim-expired' }, 'a second ack of the same item is refused')
  const auto = a.send(enqueue(null))
  t.match(auto, { ok: true, value: { duplicate: false } }, 'an item without an id gets one from its entry')
  t.same(log.sm.queues.stats('q', log.clock), { depth: 2, ready: 2, delayed: 0, inFlight: 0, deadLetters: 0, waiters: 0, acked: 1, oldestAgeMs: 50 })
})

t.test('a waiting worker is handed the item by the enqueue; a stale fence cannot ack; the session end returns claims', async t => {
  const { log, a, b } = twoSessions()
  const handed: string[] = []
  log.sm.queues.on('claimed', e => handed.push(`${e.session}/${e.owner}:${e.items.map(i => `${i.id}@${i.fence}`).join(',')}`))
  t.same(items(a.send(claim('wa', { wait: true }))), [], 'nothing ready: a waits')
  t.same(items(b.send(claim('wb', { wait: true, max: 2 }))), [], 'b waits behind a')
  b.send(enqueue('1'))
  const first = log.index
  b.send(enqueue('2'))
  b.send(enqueue('3'))
  t.same(handed, [`n1/a/wa:1@${first}`, `n2/b/wb:2@${first + 1}`, `n2/b/wb:3@${first + 2}`], 'first come first served, each up to its capacity')
  t.same(log.sm.queues.stats('q', log.clock).waiters, 0)
  a.send(enqueue('4'))
  t.same(items(a.send(claim('wa2'))), [{ id: '4', payload: bytes('4'), fence: log.index, attempt: 1, enqueuedAt: log.clock - 10 }])
  // b's session ends: its two claims go back, first in line ahead of nothing else.
  log.expire('n2/b')
  const again = items(a.send(claim('wa3', { max: 5 })))
  t.same(again.map(i => [i.id, i.attempt]), [['2', 2], ['3', 2]], 'the expired session\'s items came back with their attempt counted')
  t.match(b.send({ op: 'ack', queue: 'q', id: '2', fence: first + 1 }), { ok: false, error: 'no-session' }, 'the old claimer cannot ack')
  t.match(a.send({ op: 'ack', queue: 'q', id: '2', fence: first + 1 }), { ok: false, error: 'claim-expired' }, 'nor can anyone with the stale fence')
  t.same(a.send({ op: 'ack', queue: 'q', id: '2', fence: again[0].fence }), { ok: true })
})

t.test('an owner that asks again while it waits waits for both: a worker freeing two slots in one batch is owed two items', async t => {
  const log = new CoordinationLog()
  const a = log.client('n1/a', 'n1')
  a.open()
  const handed: string[] = []
  log.sm.queues.on('claimed', e => handed.push(...e.items.map(i => i.id)))
  t.same(items(a.send(claim('worker', { wait: true }))), [], 'nothing ready: it waits for one')
  t.same(items(a.send(claim('worker', { wait: true }))), [], 'and asks for one more')
  t.equal(log.sm.queues.stats('q', log.clock).waiters, 2, 'the log owes it two items')
  a.send(enqueue('1'))
  a.send(enqueue('2'))
  a.send(enqueue('3'))
  t.same(handed, ['1', '2'], 'both handed to it; the third stays queued')
  t.equal(log.sm.queues.stats('q', log.clock).ready, 1)
})

t.test('waiting slots are served in the order they began to wait: a worker that frees a slot queues it behind workers already waiting', async t => {
  const { log, a, b } = twoSessions()
  const handed: string[] = []
  log.sm.queues.on('claimed', e => handed.push(...e.items.map(i => `${e.owner}:${i.id}`)))
  a.send(claim('A', { max: 2, wait: true }))
  b.send(claim('B', { max: 2, wait: true }))
  a.send(enqueue('1'))
  const first = log.sm.queues.item('q', '1')?.claim?.fence as number
  t.same(a.send({ op: 'ack', queue: 'q', id: '1', fence: first }), { ok: true })
  a.send(claim('A', { wait: true }))
  t.equal(log.sm.queues.stats('q', log.clock).waiters, 4, 'A is owed two items again, B two')
  for (const id of ['2', '3', '4', '5', '6']) a.send(enqueue(id))
  t.same(handed, ['A:1', 'A:2', 'B:3', 'B:4', 'A:5'], 'A\'s first two slots, then B\'s, then the slot A freed last')
  t.equal(log.sm.queues.stats('q', log.clock).ready, 1)
})

t.test('the leader\'s q-expire ends a claim only if its fence still holds; attempts run out into dead letters', async t => {
  const log = new CoordinationLog()
  const a = log.client('n1/a', 'n1')
  a.open()
  a.send(enqueue('p', 0, 2))
  const leader = (cmd: Command): CommandResult => log.append({ c: '', s: 0, lo: 0, cmd })
  const c1 = items(a.send(claim('w')))[0]
  t.match(a.send({ op: 'q-expire', queue: 'q', id: 'p', fence: c1.fence }), { ok: false, error: 'invalid' }, 'a session cannot expire claims')
  leader({ op: 'q-expire', queue: 'q', id: 'p', fence: c1.fence - 1 })
  t.equal(log.sm.queues.item('q', 'p')?.claim?.fence, c1.fence, 'an expire for an older fence changes nothing')
  leader({ op: 'q-expire', queue: 'q', id: 'p', fence: c1.fence })
  const c2 = items(a.send(claim('w')))[0]
  t.equal(c2.attempt, 2)
  a.send({ op: 'nack', queue: 'q', id: 'p', fence: c2.fence, delayMs: 0, error: 'boom' })
  t.same(log.sm.queues.stats('q', log.clock).deadLetters, 1, 'the second failure of a two-attempt item is its last')
  t.match(log.sm.queues.deadLetters('q'), [{ id: 'p', attempts: 2, lastError: 'boom' }])
  t.same(a.send({ op: 'requeue-dead', queue: 'q', ids: null }), { ok: true, value: { count: 1 } })
  t.equal(items(a.send(claim('w')))[0].attempt, 1, 'a requeued dead letter starts its attempts again')
})

t.test('a delayed item is not claimable before its time; a waiter gets it from the leader\'s q-wake', async t => {
  const log = new CoordinationLog()
  const a = log.client('n1/a', 'n1')
  a.open()
  a.send(enqueue('later', 1000))
  t.same(items(a.send(claim('w', { wait: true }))), [], 'not yet')
  t.equal(log.sm.queues.nextDue(), log.clock + 990)
  const handed: string[] = []
  log.sm.queues.on('claimed', e => handed.push(e.items[0].id))
  log.append({ c: '', s: 0, lo: 0, cmd: { op: 'q-wake', queue: 'q' } }, log.clock + 500)
  t.same(handed, [], 'a wake before the time hands nothing')
  log.append({ c: '', s: 0, lo: 0, cmd: { op: 'q-wake', queue: 'q' } }, log.clock + 600)
  t.same(handed, ['later'])
})

t.test('a batch applies each command in order with its own answer, in one entry', async t => {
  const log = new CoordinationLog()
  const a = log.client('n1/a', 'n1')
  a.open()
  a.send(enqueue('1'))
  const c = items(a.send(claim('w')))[0]
  const before = log.index
  const r = a.send({ op: 'batch', cmds: [{ op: 'ack', queue: 'q', id: '1', fence: c.fence }, enqueue('2'), claim('w'), { op: 'expire', session: 'n1/a' }] as any })
  t.equal(log.index, before + 1)
  const results = (r as { value: CommandResult[] }).value
  t.same(results[0], { ok: true })
  t.match(results[1], { ok: true, value: { id: '2' } })
  t.same(items(results[2]).map(i => i.id), ['2'])
  t.match(results[3], { ok: false, error: 'invalid' }, 'a leader command cannot ride in a batch')
  t.ok(log.sm.session('n1/a'), 'and did not run')
})

type Step =
  | { t: 'enqueue', c: number, id: number, delay: number }
  | { t: 'claim', c: number, max: number, wait: boolean }
  | { t: 'ack' | 'nack' | 'giveback' | 'extend', c: number, pick: number, stale: boolean }
  | { t: 'expireClaim', pick: number, stale: boolean }
  | { t: 'endSession', c: number }
  | { t: 'wake', dt: number }
  | { t: 'snapshot' }

const steps: fc.Arbitrary<Step[]> = fc.array(fc.oneof(
  { arbitrary: fc.record({ t: fc.constant('enqueue' as const), c: fc.nat(2), id: fc.nat(30), delay: fc.constantFrom(0, 0, 0, 25) }), weight: 6 },
  { arbitrary: fc.record({ t: fc.constant('claim' as const), c: fc.nat(2), max: fc.integer({ min: 1, max: 3 }), wait: fc.boolean() }), weight: 5 },
  { arbitrary: fc.record({ t: fc.constantFrom('ack' as const, 'nack' as const, 'giveback' as const, 'extend' as const), c: fc.nat(2), pick: fc.nat(), stale: fc.nat(4).map(n => n === 0) }), weight: 8 },
  { arbitrary: fc.record({ t: fc.constant('expireClaim' as const), pick: fc.nat(), stale: fc.boolean() }), weight: 3 },
  { arbitrary: fc.record({ t: fc.constant('endSession' as const), c: fc.nat(2) }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant('wake' as const), dt: fc.integer({ min: 0, max: 40 }) }), weight: 1 },
  { arbitrary: fc.constant({ t: 'snapshot' as const }), weight: 1 }
), { minLength: 20, maxLength: 150, size: 'max' })

/**
 * Replays a random log on one state machine and checks, after every entry:
 * no acknowledged enqueue is lost (every id enqueued is queued, claimed,
 * dead or acked, exactly one of them), no item is acked twice, each live
 * claim's fence belongs to the entry that granted it, and a replica built
 * from a snapshot at a random point gives the same answers to the rest.
 */
function replay (plan: Step[]): void {
  let log = new CoordinationLog()
  const sessions = [0, 1, 2].map(i => ({ id: `n${i}/s`, gen: 0 }))
  const clients = sessions.map((s, i) => log.client(s.id, `n${i}`))
  for (const c of clients) c.open()
  const enqueued = new Set<string>()
  const acked = new Set<string>()
  const gen = new Map<string, number>()
  const held: Array<{ c: number, id: string, fence: number }> = []
  const answer = (c: number, cmd: Command): CommandResult => clients[c].send(cmd)
  const pickClaim = (pick: number, stale: boolean): { c: number, id: string, fence: number } | null => {
    const live = [...log.sm.queues.claims()].map(({ item, claim: c }) => ({ c: sessions.findIndex(s => s.id === c.session), id: item.id, fence: c.fence }))
    const from = stale || live.length === 0 ? held : live
    return from.length === 0 ? null : from[pick % from.length]
  }
  for (const step of plan) {
    switch (step.t) {
      case 'enqueue': {
        const r = answer(step.c, enqueue(`i${step.id}`, step.delay))
        if (r.ok && (r.value as { duplicate: boolean }).duplicate === false) {
          enqueued.add(`i${step.id}`)
          gen.set(`i${step.id}`, (gen.get(`i${step.id}`) ?? 0) + 1)
        }
        break
      }
      case 'claim': {
        const r = answer(step.c, claim(`o${step.c}`, { max: step.max, wait: step.wait }))
        if (r.ok) for (const it of items(r)) held.push({ c: step.c, id: it.id, fence: it.fence })
        break
      }
      case 'ack': case 'nack': case 'giveback': case 'extend': {
        // Mostly the live claim by its own claimer; sometimes a stale claim, or the wrong client.
        const h = pickClaim(step.pick, step.stale)
        if (h === null) break
        if (!step.stale) step.c = h.c
        const op = step.t === 'giveback' ? 'give-back' : step.t
        const cmd = { op, queue: 'q', id: h.id, fence: h.fence, delayMs: 0, error: null, visibilityMs: 1000 } as Command
        const r = answer(step.c, cmd)
        if (r.ok && step.t === 'ack') {
          const key = `${h.id}#${gen.get(h.id) ?? 0}`
          if (acked.has(key)) throw new Error(`item ${key} acked twice`)
          acked.add(key)
          // An acked id may be enqueued again, as a new item.
          enqueued.delete(h.id)
        }
        if (r.ok && step.c !== h.c) throw new Error(`client ${step.c} changed a claim of client ${h.c}`)
        break
      }
      case 'expireClaim': {
        const h = pickClaim(step.pick, step.stale)
        if (h === null) break
        const current = log.sm.queues.item('q', h.id)?.claim?.fence
        log.append({ c: '', s: 0, lo: 0, cmd: { op: 'q-expire', queue: 'q', id: h.id, fence: h.fence } })
        if (current !== undefined && current !== h.fence && log.sm.queues.item('q', h.id)?.claim?.fence !== current) throw new Error(`expiring fence ${h.fence} of ${h.id} ended its newer claim ${current}`)
        break
      }
      case 'endSession':
        log.expire(sessions[step.c].id)
        clients[step.c].open()
        break
      case 'wake':
        log.append({ c: '', s: 0, lo: 0, cmd: { op: 'q-wake', queue: 'q' } }, log.clock + step.dt)
        break
      case 'snapshot': {
        const replica = CoordinationLog.replicaOf(log)
        if (!equals(replica.sm.snapshot(), log.sm.snapshot())) throw new Error('a restored replica differs')
        const next = replica
        for (const [i, c] of clients.entries()) clients[i] = Object.assign(Object.create(Object.getPrototypeOf(c)), c, { log: next })
        log = next
        break
      }
    }
    // Claims the log handed to waiters count as held too.
    for (const { item, claim: c } of log.sm.queues.claims()) {
      const who = sessions.findIndex(s => s.id === c.session)
      if (!held.some(h => h.id === item.id && h.fence === c.fence)) held.push({ c: who, id: item.id, fence: c.fence })
      if (c.fence > log.index) throw new Error(`claim of ${item.id} has fence ${c.fence} beyond the log`)
    }
    const indexed = new Set([...log.sm.queues.claims()].map(c => c.item.id))
    for (const id of new Set([...enqueued, ...held.map(h => h.id)])) {
      if ((log.sm.queues.item('q', id)?.claim ?? null) !== null && !indexed.has(id)) throw new Error(`item ${id} is claimed but missing from the claims the leader expires`)
    }
    const dead = new Set(log.sm.queues.deadLetters('q').map(d => d.id))
    for (const id of enqueued) {
      if (log.sm.queues.item('q', id) === undefined && !dead.has(id)) throw new Error(`item ${id} was enqueued, never acked, and is gone`)
    }
  }
}

t.test('random logs keep every enqueued item until it is acked once, and snapshots carry on identically', async t => {
  const seed = Number(process.env.SEED ?? Date.now() % 1e9)
  const out = fc.check(fc.property(steps, plan => { replay(plan) }), { seed, numRuns: 300 })
  t.notOk(out.failed, `queue invariants (SEED=${seed} to replay)`, { report: out.failed ? fc.defaultReportMessage(out) : '' })
})

t.test('an entry that does not decode as a queue command is refused the same way everywhere', async t => {
  const log = new CoordinationLog()
  const a = log.client('n1/a', 'n1')
  a.open()
  const bad = stampEntry(log.clock + 10, encodeEnvelope({ c: 'n1/a', s: 9, lo: 0, cmd: { op: 'enqueue', queue: 'q', id: null, payload: new Uint8Array(300 * 1024), delayMs: 0, maxAttempts: 3 } }))
  t.match(log.appendData(bad), { ok: false, error: 'invalid', message: /payload over/ })
  t.equal(log.sm.rejectedEntries, 1)
})
