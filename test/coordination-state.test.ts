/**
 * Scenario tests of the coordination state machine (lib/coordination/):
 * sessions, fenced FIFO locks, elections and per-client deduplication, each
 * driven through committed entries as the Raft log would apply them. The
 * story lines are what the state machine tells the node it runs on.
 */
import t from 'tap'
import { encodeEnvelope, InvalidCommandError, leaderEntry, MAX_COMMAND_BYTES, MAX_NAME_LENGTH, splitEntry, stampEntry, type Envelope } from '../lib/coordination/commands.js'
import { CoordinationState } from '../lib/coordination/state.js'
import { EntryType } from '../raft/index.js'
import { CoordinationLog, type Client } from './helpers/coordination-log.js'

const granted = (fence: number): object => ({ ok: true, granted: true, queued: false, fence })
const queued = { ok: true, granted: false, queued: true }
const refused = { ok: true, granted: false, queued: false }

/** A log with sessions s1 and s2 (nodes n1, n2) open, the story so far discarded. */
function twoSessions (): { log: CoordinationLog, s1: Client, s2: Client } {
  const log = new CoordinationLog()
  const s1 = log.client('s1', 'n1')
  const s2 = log.client('s2', 'n2')
  s1.open()
  s2.open()
  log.take()
  return { log, s1, s2 }
}

t.test('sessions', async t => {
  t.test('a node opens a session; it is listed with the stamp and index of its opening', t => {
    const log = new CoordinationLog()
    t.same(log.client('s1', 'n1').open(5000), { ok: true })
    t.same(log.sm.sessionList(), [{ id: 's1', node: 'n1', ttlMs: 5000, openedAt: log.clock, openedIndex: 1 }])
    t.same(log.take(), ['session s1 of n1 opened at 1'])
    t.end()
  })

  t.test('opening the same session again changes nothing', t => {
    const log = new CoordinationLog()
    const s1 = log.client('s1', 'n1')
    s1.open()
    log.take()
    t.same(s1.open(), { ok: true })
    t.same(log.take(), [], 'no second opening')
    t.equal(log.sm.session('s1')?.openedIndex, 1)
    t.end()
  })

  t.test('a session needs a client id', t => {
    const log = new CoordinationLog()
    t.match(log.client('', 'n1').open(), { ok: false, error: 'invalid' })
    t.same(log.sm.sessionList(), [])
    t.end()
  })

  t.test('commands of a session that is not open answer no-session and change nothing', t => {
    const { log, s1 } = twoSessions()
    const stranger = log.client('s9', 'n9')
    t.match(stranger.acquire('x'), { ok: false, error: 'no-session' })
    t.match(stranger.release('x'), { ok: false, error: 'no-session' })
    t.match(stranger.close(), { ok: false, error: 'no-session' })
    t.same(log.sm.lockList(), [])
    s1.close()
    t.match(s1.acquire('x'), { ok: false, error: 'no-session' }, 'nor may a closed session act')
    t.same(log.sm.lockList(), [])
    t.match(log.answers.at(-1), { client: 's1', seq: 2, result: { error: 'no-session' }, index: log.index }, 'the proposer still hears its answer')
    t.end()
  })
})

t.test('locks', async t => {
  t.test('a free lock is granted at once, fenced with the index of the granting entry', t => {
    const { log, s1 } = twoSessions()
    t.same(s1.acquire('x'), granted(3))
    t.same(log.sm.lock('lock', 'x'), { kind: 'lock', name: 'x', holder: { session: 's1', owner: 'o1', fence: 3, grantedAt: log.clock }, waiters: [] })
    t.equal(log.sm.holderNode('lock', 'x'), 'n1')
    t.same(log.take(), ['lock x granted to s1/o1 fence=3'])
    t.end()
  })

  t.test('other owners wait in line; each release grants the first waiter, fenced with the release\'s index', t => {
    const { log, s1, s2 } = twoSessions()
    s1.acquire('x')
    t.same(s1.acquire('x', { owner: 'o2' }), queued, 'a second owner in the same session is a second holder-to-be (not reentrant)')
    t.same(s2.acquire('x'), queued)
    t.same(s2.acquire('x', { owner: 'o3' }), queued)
    t.same(log.sm.lock('lock', 'x')?.waiters.map(w => `${w.session}/${w.owner}`), ['s1/o2', 's2/o1', 's2/o3'])
    log.take()
    s1.release('x')
    t.same(log.take(), ['lock x released by s1/o1', `lock x granted to s1/o2 fence=${log.index}`])
    s1.release('x', { owner: 'o2' })
    t.same(log.take(), ['lock x released by s1/o2', `lock x granted to s2/o1 fence=${log.index}`])
    s2.release('x')
    t.same(log.take(), ['lock x released by s2/o1', `lock x granted to s2/o3 fence=${log.index}`])
    s2.release('x', { owner: 'o3' })
    t.same(log.take(), ['lock x released by s2/o3'])
    t.equal(log.sm.lock('lock', 'x'), undefined, 'an idle lock leaves the table')
    t.end()
  })

  t.test('an owner that asks again is told where it stands', t => {
    const { s1, s2 } = twoSessions()
    s1.acquire('x')
    s2.acquire('x')
    t.same(s1.acquire('x'), granted(3), 'the holder keeps its fence')
    t.same(s2.tryAcquire('x'), queued, 'a waiter stays in line')
    t.end()
  })

  t.test('tryAcquire of a held lock is refused and does not queue', t => {
    const { log, s1, s2 } = twoSessions()
    s1.acquire('x')
    t.same(s2.tryAcquire('x'), refused)
    t.same(log.sm.lock('lock', 'x')?.waiters, [])
    t.same(s2.tryAcquire('y'), granted(log.index), 'a free one is granted')
    t.end()
  })

  t.test('release is idempotent, and a release by a non-holder changes nothing', t => {
    const { log, s1, s2 } = twoSessions()
    s1.acquire('x')
    s1.release('x')
    log.take()
    t.same(s1.release('x'), { ok: true })
    t.same(s2.release('never-held'), { ok: true })
    s1.acquire('x')
    s1.release('x', { owner: 'o2' })
    t.equal(log.sm.lock('lock', 'x')?.holder?.owner, 'o1', 'another owner of the same session cannot release it')
    s1.release('x')
    log.take()
    s2.acquire('x')
    t.same(s1.release('x'), { ok: true }, 'the former holder cannot release the new holder')
    t.same(log.sm.lock('lock', 'x')?.holder?.session, 's2')
    t.same(log.take(), [`lock x granted to s2/o1 fence=${log.index - 1}`])
    t.end()
  })

  t.test('a waiter that gives up leaves the queue; the next release skips it', t => {
    const { log, s1, s2 } = twoSessions()
    s1.acquire('x')
    s2.acquire('x')
    s1.acquire('x', { owner: 'o2' })
    s2.release('x')
    t.same(log.sm.lock('lock', 'x')?.waiters.map(w => `${w.session}/${w.owner}`), ['s1/o2'])
    log.take()
    s1.release('x')
    t.same(log.take(), ['lock x released by s1/o1', `lock x granted to s1/o2 fence=${log.index}`])
    t.end()
  })

  t.test('elections share the table with locks but not the names', t => {
    const { log, s1, s2 } = twoSessions()
    t.same(s1.acquire('x', { kind: 'election' }), granted(3))
    t.same(s2.acquire('x'), granted(4), 'lock x is another name than election x')
    t.same(s2.acquire('x', { kind: 'election' }), queued)
    t.equal(log.sm.holderNode('election', 'x'), 'n1')
    t.equal(log.sm.holderNode('lock', 'x'), 'n2')
    t.equal(log.sm.holderNode('election', 'y'), null)
    log.take()
    s1.release('x', { kind: 'election' })
    t.same(log.take(), ['election x released by s1/o1', 'election x granted to s2/o1 fence=6'])
    t.equal(log.sm.holderNode('election', 'x'), 'n2')
    t.same(log.sm.lock('lock', 'x')?.holder?.fence, 4, 'the lock was not touched')
    t.end()
  })
})

t.test('a session that ends lets go of everything, and the next waiters are granted by that entry', async t => {
  /** s1 holds x and y and waits for z; s2 waits for x and holds z; s3 waits for y. */
  function tangled (): { log: CoordinationLog, s1: Client } {
    const { log, s1, s2 } = twoSessions()
    const s3 = log.client('s3', 'n3')
    s3.open()
    s1.acquire('x')
    s1.acquire('y')
    s2.acquire('z')
    s1.acquire('z')
    s2.acquire('x')
    s3.acquire('y')
    log.take()
    return { log, s1 }
  }
  const after = (log: CoordinationLog): object => ({
    sessions: log.sm.sessionList().map(s => s.id),
    locks: log.sm.lockList().map(r => ({ name: r.name, holder: `${r.holder?.session}/${r.holder?.owner}@${r.holder?.fence}`, waiters: r.waiters.map(w => w.session) }))
  })

  for (const [how, reason] of [['closes it', 'closed'], ['expires it', 'expired'], ['restarts, opening a new session', 'replaced']] as const) {
    t.test(`when its node ${how}`, t => {
      const { log, s1 } = tangled()
      if (reason === 'closed') t.same(s1.close(), { ok: true })
      if (reason === 'expired') t.same(log.expire('s1'), { ok: true })
      if (reason === 'replaced') t.same(log.client('s1b', 'n1').open(), { ok: true })
      const end = log.index
      const story = log.take()
      t.same(story.slice(0, 4), [
        'lock x released by s1/o1',
        'lock y released by s1/o1',
        `session s1 of n1 ${reason}`,
        `lock x granted to s2/o1 fence=${end}`
      ])
      t.same(story.slice(4), [`lock y granted to s3/o1 fence=${end}`, ...(reason === 'replaced' ? [`session s1b of n1 opened at ${end}`] : [])])
      t.same(after(log), {
        sessions: ['s2', 's3', ...(reason === 'replaced' ? ['s1b'] : [])],
        locks: [
          { name: 'x', holder: `s2/o1@${end}`, waiters: [] },
          { name: 'y', holder: `s3/o1@${end}`, waiters: [] },
          { name: 'z', holder: 's2/o1@6', waiters: [] }
        ]
      }, 'its wait for z is dropped')
      t.end()
    })
  }

  t.test('a node restored from a snapshot tells the grants in the same order as one that applied the whole log', t => {
    const { log, s1, s2 } = twoSessions()
    s2.acquire('a')
    s1.acquire('b')
    s1.acquire('a')
    s2.release('a')
    s2.acquire('a')
    s2.acquire('b')
    const restored = CoordinationLog.replicaOf(log)
    log.take()
    log.expire('s1')
    restored.expire('s1')
    t.same(restored.take(), log.take())
    t.end()
  })

  t.test('an expiry of a session that already ended changes nothing', t => {
    const { log, s1 } = tangled()
    s1.close()
    const before = after(log)
    log.take()
    t.same(log.expire('s1'), { ok: true })
    t.same(log.take(), [])
    t.same(after(log), before)
    t.end()
  })
})

t.test('deduplication: a command committed twice is applied once (Raft thesis §6.3)', async t => {
  t.test('a re-sent tryAcquire is answered as first applied, though the lock is free now', t => {
    const { log, s1, s2 } = twoSessions()
    s1.acquire('x')
    const seq = s2.next
    t.same(s2.tryAcquire('x'), refused)
    s1.release('x')
    t.same(s2.resend(seq), refused)
    t.equal(log.sm.lock('lock', 'x'), undefined, 'nobody took it')
    t.same(log.answers.at(-1), { client: 's2', seq, result: refused, index: log.index }, 'the answer is told again, at the repeat\'s index')
    t.end()
  })

  t.test('a re-sent acquire arriving after the release does not take the lock again', t => {
    const { log, s1 } = twoSessions()
    const seq = s1.next
    s1.acquire('x')
    s1.release('x')
    log.take()
    t.notMatch(s1.resend(seq), { granted: true })
    t.equal(log.sm.lock('lock', 'x'), undefined)
    t.same(log.take(), [])
    t.end()
  })

  t.test('a re-sent release arriving after the next acquire does not release it', t => {
    const { log, s1 } = twoSessions()
    s1.acquire('x')
    const seq = s1.next
    s1.release('x')
    s1.acquire('x')
    const fence = log.index
    log.take()
    s1.resend(seq)
    t.same(log.sm.lock('lock', 'x')?.holder, { session: 's1', owner: 'o1', fence, grantedAt: log.clock - 10 })
    t.same(log.take(), [])
    t.end()
  })

  t.test('a re-sent open after the session closed reopens it: open is not deduplicated', t => {
    const { log, s1 } = twoSessions()
    s1.close()
    t.same(s1.resend(0), { ok: true })
    t.equal(log.sm.session('s1')?.openedIndex, log.index)
    t.end()
  })
})

t.test('lo: the lowest seq a client still waits on lets the state machine forget older answers', async t => {
  t.test('once lo passes a command, a late copy of it is answered but never applied', t => {
    const { log, s1, s2 } = twoSessions()
    s2.acquire('x')
    const seq = s1.next
    s1.acquire('x', { wait: false })
    s1.send({ op: 'acquire', kind: 'lock', name: 'y', owner: 'o1', wait: true }, seq)
    t.same(s1.resend(seq), refused, 'still outstanding: the stored answer')
    s2.release('x')
    s1.release('y')
    t.notMatch(s1.resend(seq), { granted: true }, 'forgotten: not the lock either')
    t.equal(log.sm.lock('lock', 'x'), undefined)
    t.end()
  })

  t.test('a lo beyond the command\'s own seq (a client bug) does not lock the client out', t => {
    const { log, s1 } = twoSessions()
    const seq = s1.next
    t.same(s1.send({ op: 'acquire', kind: 'lock', name: 'x', owner: 'o1', wait: true }, 1_000), granted(3))
    t.same(s1.resend(seq), granted(3), 'its own answer is kept')
    t.same(s1.acquire('y'), granted(log.index), 'later commands still apply')
    t.end()
  })
})

t.test('entries that do not decode are counted and skipped the same way on every node', t => {
  const good: Envelope = { c: 's1', s: 1, lo: 1, cmd: { op: 'acquire', kind: 'lock', name: 'x', owner: 'o1', wait: true } }
  const bad: Array<[string, Uint8Array]> = [
    ['shorter than a stamp', new Uint8Array([1, 2, 3])],
    ['a stamp that is not a finite time', stampEntry(Number.NaN, encodeEnvelope(good))],
    ['not msgpack', stampEntry(1_000_050, new Uint8Array([0xc1]))],
    ['an unknown op', stampEntry(1_000_050, encodeEnvelope({ ...good, cmd: { op: 'steal' } } as unknown as Envelope))],
    ['a name too long', stampEntry(1_000_050, encodeEnvelope({ ...good, cmd: { ...good.cmd, name: 'n'.repeat(MAX_NAME_LENGTH + 1) } as Envelope['cmd'] }))],
    ['too large', stampEntry(1_000_050, new Uint8Array(MAX_COMMAND_BYTES + 1))]
  ]
  const nodes = [new CoordinationLog(), new CoordinationLog()]
  for (const log of nodes) log.client('s1', 'n1').open()
  for (const log of nodes) {
    for (const [what, data] of bad) t.match(log.appendData(data), { ok: false, error: 'invalid' }, what)
    t.same(log.appendData(new Uint8Array([9, 9]), EntryType.Config), { ok: true }, 'other entry types are not the coordination\'s')
  }
  t.equal(nodes[0].sm.rejectedEntries, bad.length)
  t.equal(nodes[0].sm.now, 1_000_010, 'nor do they move time')
  t.same(nodes[0].sm.snapshot(), nodes[1].sm.snapshot())
  t.same(nodes[0].append(good), granted(nodes[0].index), 'the log goes on')
  t.end()
})

t.test('time is the leader\'s stamp, and never goes back even if a new leader\'s clock is behind', t => {
  const { log, s1, s2 } = twoSessions()
  s1.acquire('x')
  const latest = log.clock
  log.clock -= 5_000
  s2.acquire('x')
  t.equal(log.sm.now, latest)
  t.same(log.sm.lock('lock', 'x')?.waiters[0]?.since, latest, 'the waiter queued at the latest time known')
  s1.release('x')
  t.same(log.sm.lock('lock', 'x')?.holder?.grantedAt, latest)
  log.append({ c: 's2', s: 9, lo: 9, cmd: { op: 'release', kind: 'lock', name: 'x', owner: 'o1' } }, latest + 1)
  t.equal(log.sm.now, latest + 1, 'and moves on with the next later stamp')
  t.end()
})

t.test('a snapshot restored into a fresh instance is the same state, and says so', t => {
  const { log, s1, s2 } = twoSessions()
  s1.acquire('x')
  s2.acquire('x')
  const copy = new CoordinationLog(new CoordinationState())
  copy.sm.restore(log.sm.snapshot())
  t.same(copy.take(), ['restored'])
  t.same(copy.sm.snapshot(), log.sm.snapshot())
  t.same(copy.sm.lockList(), log.sm.lockList())
  t.throws(() => copy.sm.restore(encodeEnvelope({ v: 99 } as unknown as Envelope)), InvalidCommandError, 'a snapshot of an unknown version')
  t.end()
})

t.test('a restored instance remembers the answers: a command re-sent after the restore is not applied again', t => {
  const { log, s1, s2 } = twoSessions()
  s1.acquire('x')
  const seq = s2.next
  t.same(s2.tryAcquire('x'), refused)
  const replica = CoordinationLog.replicaOf(log)
  replica.expire('s1')
  t.same(replica.append({ c: 's2', s: seq, lo: seq, cmd: { op: 'acquire', kind: 'lock', name: 'x', owner: 'o1', wait: false } }), refused)
  t.equal(replica.sm.lock('lock', 'x'), undefined, 'the free lock was not taken')
  t.end()
})

t.test('an ordered event is told once, at its index, with its publisher\'s node; a re-sent copy is not told again', t => {
  const { log, s1 } = twoSessions()
  const told: Array<{ topic: string, payload: string, node: string, index: number }> = []
  log.sm.on('ordered', e => told.push({ topic: e.topic, payload: Buffer.from(e.payload).toString(), node: e.node, index: e.index }))
  const seq = s1.next
  t.same(s1.send({ op: 'publish', topic: 'encounter.saved', payload: Buffer.from('e1') }), { ok: true })
  const at = log.index
  s1.resend(seq)
  t.same(told, [{ topic: 'encounter.saved', payload: 'e1', node: 'n1', index: at }])
  t.end()
})

t.test('the leader decodes an entry once: its apply reuses what it checked when proposing, then lets it go; a copy decodes the same', t => {
  const env: Envelope = { c: 's1', s: 1, lo: 1, cmd: { op: 'enqueue', queue: 'q', id: null, payload: new Uint8Array([1, 2, 3]), delayMs: 0, maxAttempts: 3 } }
  const made = leaderEntry(1_000_050, encodeEnvelope(env))
  t.same(made.envelope, env)
  t.equal(splitEntry(made.data).envelope, made.envelope, 'the same object: not decoded again')
  const again = splitEntry(made.data)
  t.not(again.envelope, made.envelope, 'not kept after its apply: the log holds the entry until the next snapshot, the decoded form need not')
  t.same(again.envelope, env)
  const copy = made.data.slice()
  t.not(splitEntry(copy).envelope, made.envelope, 'a follower\'s copy is decoded')
  t.same(splitEntry(copy), { stamp: 1_000_050, envelope: env })
  t.throws(() => leaderEntry(1_000_050, encodeEnvelope({ ...env, cmd: { op: 'steal' } } as unknown as Envelope)), InvalidCommandError, 'an invalid envelope is refused before it is proposed')
  t.throws(() => leaderEntry(Number.NaN, encodeEnvelope(env)), InvalidCommandError)
  t.end()
})
