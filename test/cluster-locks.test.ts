import { performance } from 'node:perf_hooks'
import t from 'tap'
import { FaultInjector } from '../gossip/fault.js'
import { Cluster, InvalidArgumentError, LockLostError, LockTimeoutError, type LockHandle } from '../lib/index.js'
import type { Grant } from '../lib/coordination/lock-table.js'
import type { CoordinationState } from '../lib/coordination/state.js'
import type { Proposer } from '../lib/proposer.js'
import { eventually, SECRET, startClusters } from './helpers/clusters.js'

t.test('three nodes started together with expect: 3 form one cluster and share locks', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const [a, b, d] = c.nodes
  t.same([...a.raftStatus().config.voters].sort(), ['n1', 'n2', 'n3'], 'the first voter set is the three nodes')
  t.ok(c.nodes.every(n => n.status().session.id !== null), 'every node holds a session once started')

  t.test('a lock is exclusive, FIFO among waiters, and its fence increases with each grant', async t => {
    const first = await a.lock('orders').acquire()
    const order: string[] = []
    const second = b.lock('orders').acquire().then(h => { order.push('b'); return h })
    await eventually(() => a.status().locks.find(l => l.name === 'orders')?.waiters === 1, 10_000, 'b queued')
    const third = d.lock('orders').acquire().then(h => { order.push('d'); return h })
    await eventually(() => a.status().locks.find(l => l.name === 'orders')?.waiters === 2, 10_000, 'd queued')
    t.equal(await d.lock('orders').tryAcquire(), null, 'tryAcquire on a held lock answers null at once')
    t.ok(first.valid(), 'the holder is valid')
    await first.release()
    t.notOk(first.valid(), 'a released handle is no longer valid')
    t.ok(first.signal.aborted, 'a released handle\'s signal has fired')
    t.type(first.signal.reason, LockLostError, 'with a LockLostError')
    const h2 = await second
    t.ok(h2.fence > first.fence, `the next grant has a larger fence (${first.fence} < ${h2.fence})`)
    await h2.release()
    const h3 = await third
    t.ok(h3.fence > h2.fence, 'and the next one larger again')
    t.same(order, ['b', 'd'], 'waiters are granted in the order they queued')
    await h3.release()
    await first.release()
  })

  t.test('acquire times out with LockTimeoutError and leaves the queue', async t => {
    const h = await b.lock('reports').acquire()
    await t.rejects(d.lock('reports').acquire({ timeoutMs: 300 }), LockTimeoutError)
    await eventually(() => b.status().locks.find(l => l.name === 'reports')?.waiters === 0, 10_000, 'the timed-out waiter to leave the queue')
    await h.release()
    const again = await d.lock('reports').tryAcquire()
    t.ok(again !== null, 'the lock is free for the next caller')
    await again?.release()
  })

  t.test('an aborted acquire rejects with the signal\'s reason', async t => {
    const h = await a.lock('abortable').acquire()
    const ac = new AbortController()
    const p = b.lock('abortable').acquire({ signal: ac.signal })
    setTimeout(() => { ac.abort(new Error('caller gave up')) }, 100)
    await t.rejects(p, { message: 'caller gave up' })
    await h.release()
  })

  t.test('locks asked for in one turn share a log entry, and each gets its own grant', async t => {
    const before = b.raftStatus().commitIndex
    const handles = await Promise.all(Array.from({ length: 8 }, async (_, i) => await b.lock(`together-${i}`).acquire()))
    const used = b.raftStatus().commitIndex - before
    t.ok(used < handles.length, `8 acquires took ${used} entries`)
    t.ok(handles.every(h => h.valid()), 'each handle is valid')
    await eventually(() => handles.every((_, i) => a.lock(`together-${i}`).holder() !== null), 10_000, 'every lock to be held, seen from another node')
    await Promise.all(handles.map(async h => { await h.release() }))
    await eventually(() => handles.every((_, i) => a.lock(`together-${i}`).holder() === null), 10_000, 'the releases to apply on another node')
  })

  t.test('a grant no caller waits for is given back (an abandoned request whose batch reached the log after its release)', async t => {
    // The race needs a retried batch to land after the release sent behind
    // it; the log is given the same outcome directly: a grant to b's session
    // for an owner b never handed out.
    const { proposer } = (b as unknown as { p: { proposer: Proposer } }).p
    const session = b.status().session.id as string
    const { result, index } = await proposer.submit(session, { op: 'acquire', kind: 'lock', name: 'stray', owner: 'abandoned.1', wait: false })
    t.same(result, { ok: true, granted: true, queued: false, fence: result.ok ? result.fence : null }, 'the log granted it')
    // Free on a only counts once a has applied the grant itself.
    await eventually(() => a.status().raft.appliedIndex >= index && a.lock('stray').holder() === null, 10_000, 'the stray grant to be given back')
    const h = await d.lock('stray').tryAcquire()
    t.ok(h !== null, 'another node can take the lock')
    await h?.release()
  })

  t.test('a stray grant that arrives inside a snapshot is given back too', async t => {
    // The grant's own apply is kept from b's lock service, as if b had
    // missed the entry and caught up from a snapshot holding its result.
    const { proposer, state } = (b as unknown as { p: { proposer: Proposer, state: CoordinationState } }).p
    const onGranted = state.listeners('granted') as Array<(g: Grant) => void>
    state.removeAllListeners('granted')
    const session = b.status().session.id as string
    try {
      const { result } = await proposer.submit(session, { op: 'acquire', kind: 'lock', name: 'stray-in-snapshot', owner: 'abandoned.2', wait: false })
      t.equal(result.ok, true, 'the log granted it')
    } finally {
      for (const fn of onGranted) state.on('granted', fn)
    }
    await eventually(() => a.lock('stray-in-snapshot').holder() !== null, 10_000, 'the grant to apply on another node')
    t.not(a.lock('stray-in-snapshot').holder(), null, 'still held: nothing on b saw the grant')
    state.restore(state.snapshot())
    await eventually(() => a.lock('stray-in-snapshot').holder() === null, 10_000, 'the stray grant to be given back after the restore')
  })

  t.test('withLock releases when the callback throws, and `await using` releases at scope end', async t => {
    await t.rejects(b.withLock('job', async () => { throw new Error('boom') }), { message: 'boom' })
    const free = await a.lock('job').tryAcquire()
    t.ok(free !== null, 'released after the throw')
    await free?.release()
    let kept: LockHandle | null = null
    {
      await using h = await d.lock('job').acquire()
      kept = h
      t.ok(h.valid())
    }
    t.notOk(kept.valid(), 'disposed at the end of the block')
    await eventually(() => a.lock('job').holder() === null, 10_000, 'the release to apply on another node')
  })

  t.test('an election has one winner, seen from every node, and the next campaigner wins on resign', async t => {
    const ea = a.election('indexer')
    const eb = b.election('indexer')
    const won = await ea.campaign()
    await eventually(() => c.nodes.every(n => n.election('indexer').leader() === 'n1'), 10_000, 'every node to see n1 win')
    const changes: Array<string | null> = []
    eb.on('change', w => { changes.push(w) })
    const next = eb.campaign()
    await eventually(() => a.status().locks.find(l => l.kind === 'election' && l.name === 'indexer')?.waiters === 1, 10_000, 'n2 queued')
    await won.release()
    const h = await next
    t.equal(eb.leader(), 'n2')
    t.same(changes, ['n2'], 'the change is observed once, straight to the new winner')
    await h.release()
  })

  t.test('many elections on a node share one listener on the log, and each sees only its own changes', async t => {
    const { state } = (b as unknown as { p: { state: CoordinationState } }).p
    const before = state.listenerCount('granted')
    const seen = Array.from({ length: 200 }, (_, i) => {
      const changes: Array<string | null> = []
      b.election(`shard-${i}`).on('change', w => { changes.push(w) })
      return changes
    })
    t.equal(state.listenerCount('granted'), before, 'a grant costs the same however many elections exist')
    t.equal(b.election('shard-7'), b.election('shard-7'), 'one object per name')
    const h = await a.election('shard-7').campaign()
    await eventually(() => seen[7].length === 1, 10_000, 'shard-7 to see its winner')
    await h.release()
    await eventually(() => seen[7].length === 2, 10_000, 'shard-7 to see the resignation')
    t.same(seen[7], ['n1', null])
    t.same(seen.filter((c, i) => i !== 7 && c.length > 0), [], 'no other election saw a change')
  })
})

t.test('a stopping node releases its locks at once, not after its session TTL', async t => {
  // A TTL far beyond the test's own timeout: the grant can only come from the close.
  const c = await startClusters(3, { sessionTtlMs: 600_000, panicAfterMs: 300_000 })
  t.teardown(async () => { await c.stopAll() })
  const [a, b, d] = c.nodes
  const h = await d.lock('nightly').acquire()
  const waiting = b.lock('nightly').acquire()
  await eventually(() => a.status().locks.find(l => l.name === 'nightly')?.waiters === 1, 10_000, 'b queued')
  await d.stop()
  t.ok(h.signal.aborted, 'the stopped node\'s handle aborted')
  const next = await waiting
  t.ok(next.fence > h.fence, 'the waiter got the lock with a larger fence')
  // b applied the entry that granted it the lock: the close of n3's session.
  t.notOk(b.status().sessions.some(s => s.node === 'n3'), 'n3\'s session is gone from the log')
  await next.release()
})

t.test('a holder cut off from the majority loses its lock before anyone else can get it, and panics', async t => {
  const c = await startClusters(3, { sessionTtlMs: 2000, panicAfterMs: 1000 })
  t.teardown(async () => { await c.stopAll() })
  const leader = c.leader()
  const holder = c.nodes.find(n => n !== leader) as Cluster
  const other = c.nodes.find(n => n !== leader && n !== holder) as Cluster
  const panics: number[] = []
  holder.on('panic', () => { panics.push(performance.now()) })
  const h = await holder.lock('hl7').acquire()
  let abortedAt = Infinity
  h.signal.addEventListener('abort', () => { abortedAt = performance.now() })
  const fault = new FaultInjector(c.nodes.map(n => n.mesh))
  const cutAt = performance.now()
  await fault.isolate(holder.mesh)
  const next = await other.lock('hl7').acquire({ timeoutMs: 20_000 })
  const grantedAt = performance.now()
  t.ok(abortedAt < grantedAt, `the cut-off holder's signal fired (${Math.round(abortedAt - cutAt)} ms after the cut) before the grant elsewhere (${Math.round(grantedAt - cutAt)} ms)`)
  t.notOk(h.valid(), 'and its valid() is false')
  t.ok(next.fence > h.fence, 'the new holder\'s fence is larger')
  t.equal(panics.length, 1, 'the cut-off node panicked')
  t.ok(panics[0] >= abortedAt, 'after its handles had aborted')
  fault.heal()
  await next.release()
  await eventually(() => holder.status().session.id !== null && holder.status().panic === null, 20_000, 'the healed node to open a new session')
})

t.test('options are validated with errors that name the option', async t => {
  const base = { name: 'test', secret: SECRET, dataDir: '/tmp/raftmesh-never-created', expect: 1 }
  await t.rejects(Cluster.start({ ...base, sessionTtlMs: 1000, panicAfterMs: 1000 }), { name: 'InvalidArgumentError', message: /panicAfterMs must be less than sessionTtlMs/ })
  await t.rejects(Cluster.start({ ...base, secret: 'short' }), InvalidArgumentError)
  await t.rejects(Cluster.start({ ...base, expect: undefined }), { message: /exactly one of `expect`/ })
  await t.rejects(Cluster.start({ ...base, voters: ['n1'] }), { message: /exactly one of `expect`/ })
  await t.rejects(Cluster.start({ ...base, maxVoters: 4 }), { message: /maxVoters must be odd/ })
  await t.rejects(Cluster.start({ ...base, nodeId: 'has/slash' }), { message: /nodeId/ })
})

t.test('a lock requested on a follower as the leader is cut off is granted through the new leader, once', async t => {
  const c = await startClusters(3, { sessionTtlMs: 2000, panicAfterMs: 1000 })
  t.teardown(async () => { await c.stopAll() })
  const old = c.leader()
  const follower = c.nodes.find(n => n !== old) as Cluster
  const leaders: Array<string | null> = []
  follower.on('leader', e => { leaders.push(e.leader) })
  const downs: string[] = []
  follower.on('member-down', e => { downs.push(e.id) })
  const fault = new FaultInjector(c.nodes.map(n => n.mesh))
  await fault.isolate(old.mesh)
  const h = await follower.lock('forwarded').acquire({ timeoutMs: 20_000 })
  t.ok(follower.raftStatus().leader !== old.id && follower.raftStatus().leader !== null, 'a new leader is known')
  t.ok(leaders.some(l => l !== null && l !== old.id), 'the follower emitted `leader` for the new leader')
  t.ok(downs.includes(old.id), 'and `member-down` for the cut-off one')
  const lock = follower.status().locks.find(l => l.name === 'forwarded')
  t.equal(lock?.holder?.node, follower.id, 'the follower holds it')
  t.equal(lock?.waiters, 0, 'and no second copy of the request waits in the queue')
  await h.release()
  fault.heal()
})
