/**
 * Queues on three real nodes in this process (libp2p on 127.0.0.1, real
 * WALs): enqueue anywhere, claim anywhere, workers on every node, claims
 * that expire, nodes that stop with items in hand, retries into dead
 * letters, and the limits a caller meets.
 */
import t from 'tap'
import { ClaimExpiredError, QueueItemTooLargeError, type Cluster, type Job } from '../lib/index.js'
import { FaultInjector } from '../gossip/fault.js'
import { eventually, startClusters } from './helpers/clusters.js'

t.test('an item enqueued on one node is claimed on another, once, and acked', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const [a, b, d] = c.nodes
  const q = a.queue<{ patient: number }>('hl7-in')
  const { id, duplicate } = await q.enqueue({ patient: 7 }, { id: 'msg-1' })
  t.same([id, duplicate], ['msg-1', false])
  t.same(await q.enqueue({ patient: 7 }, { id: 'msg-1' }), { id: 'msg-1', duplicate: true }, 'the same id is not enqueued twice')
  const job = await b.queue<{ patient: number }>('hl7-in').claim({ visibilityMs: 5000 })
  t.same(job.payload, { patient: 7 })
  t.equal(job.attempt, 1)
  t.ok(job.valid(), 'the claim is valid')
  t.equal(await d.queue('hl7-in').tryClaim(), null, 'nobody else can claim it meanwhile')
  await job.ack()
  await job.ack()
  t.ok(job.signal.aborted, 'an acked job\'s signal has fired')
  await eventually(() => a.status().raft.appliedIndex >= b.status().raft.appliedIndex, 5000, 'a to apply the ack')
  t.match(await q.stats(), { depth: 0, inFlight: 0, acked: 1 })
  t.match(a.status().queues, [{ name: 'hl7-in', depth: 0, acked: 1 }], 'status lists the queue')
  t.match(await a.metrics.metrics(), /raftmesh_queue_acked\{[^}]*queue="hl7-in"[^}]*\} 1\n/, 'and so do the metrics')
})

t.test('a waiting claim is handed the next enqueue from any node; an aborted wait rejects with its reason', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const [a, b] = c.nodes
  const waiting = b.queue<string>('jobs').claim()
  await eventually(() => a.status().raft.appliedIndex > 0 && (b.status().raft.appliedIndex > 0), 5000)
  await a.queue<string>('jobs').enqueue('wake up')
  const job = await waiting
  t.equal(job.payload, 'wake up')
  await job.ack()
  const ac = new AbortController()
  const gave = b.queue('jobs').claim({ signal: ac.signal })
  ac.abort(new Error('shutting down'))
  await t.rejects(gave, { message: 'shutting down' })
  await a.queue<string>('jobs').enqueue('for someone else')
  const next = await a.queue<string>('jobs').claim({ timeoutMs: 10_000 })
  t.equal(next.payload, 'for someone else', 'the abandoned waiter did not keep the item')
  await next.ack()
})

t.test('workers on three nodes process every item once, never more at once than their concurrency', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const seen = new Map<number, number>()
  const running = new Map<string, number>()
  let maxRunning = 0
  const processors = c.nodes.map(n => n.queue<number>('work').process(async job => {
    const now = (running.get(n.id) ?? 0) + 1
    running.set(n.id, now)
    maxRunning = Math.max(maxRunning, now)
    seen.set(job.payload, (seen.get(job.payload) ?? 0) + 1)
    await new Promise(resolve => setTimeout(resolve, Math.random() * 5))
    running.set(n.id, (running.get(n.id) ?? 1) - 1)
  }, { concurrency: 4, visibilityMs: 10_000 }))
  const completed: number[] = []
  for (const p of processors) p.on('completed', job => { completed.push(job.payload) })
  processors[0].on('completed', () => { throw new Error('a listener that throws') })
  const N = 600
  await Promise.all(Array.from({ length: N }, async (_, i) => { await c.nodes[i % 3].queue<number>('work').enqueue(i) }))
  await eventually(() => seen.size === N, 60_000, 'every item processed')
  // A slot is freed when the handler returns, before its ack commits: wait for the acks themselves.
  await eventually(() => processors.every(p => p.running === 0) && processors.reduce((n, p) => n + p.processed, 0) === N, 10_000, 'the workers to finish and their acks to commit')
  t.equal(seen.size, N)
  t.same([...seen.values()].filter(n => n !== 1), [], 'no item ran twice')
  t.ok(maxRunning <= 4, `at most 4 at once on a node (max ${maxRunning})`)
  t.ok(processors.every(p => p.processed > 0), `every node worked (${processors.map(p => p.processed).join(', ')})`)
  t.same(completed.sort((x, y) => x - y), Array.from({ length: N }, (_, i) => i), 'a completed event for each item, once its ack applied')
  t.same(processors.map(p => p.failed), [0, 0, 0], 'a listener that throws fails no job')
  await eventually(() => c.nodes.every(n => n.status().raft.appliedIndex === c.leader().status().raft.commitIndex), 10_000, 'all nodes to apply')
  t.match(await c.nodes[1].queue('work').stats(), { depth: 0, inFlight: 0, acked: N })
  await Promise.all(processors.map(async p => { await p.stop() }))
})

t.test('a claim not acked within its visibility goes to another worker with a larger fence, after the first signal fired', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const a = c.nodes.find(n => n !== c.leader()) as Cluster
  const b = c.nodes.find(n => n !== a) as Cluster
  await a.queue<string>('slow').enqueue('x')
  const first = await a.queue<string>('slow').claim({ visibilityMs: 600 })
  let firedAt = Infinity
  first.signal.addEventListener('abort', () => { firedAt = performance.now() })
  // Cut off, the claimer cannot hear the expiry on the log: only its own clock can stop it in time.
  const fault = new FaultInjector(c.nodes.map(n => n.mesh))
  await fault.isolate(a.mesh)
  const second = await b.queue<string>('slow').claim({ visibilityMs: 5000, timeoutMs: 20_000 })
  const grantedAt = performance.now()
  fault.heal()
  t.ok(firedAt < grantedAt, `the first claim's signal fired before the item went elsewhere (${Math.round(grantedAt - firedAt)} ms before)`)
  t.notOk(first.valid())
  t.ok(second.fence > first.fence, 'the new claim\'s fence is larger')
  t.equal(second.attempt, 2)
  await t.rejects(first.ack(), ClaimExpiredError, 'the first worker cannot ack any more, once it hears the log again')
  await second.ack()
})

t.test('a node that stops gives its unfinished items back at once; they are processed elsewhere', async t => {
  const c = await startClusters(3, { sessionTtlMs: 600_000, panicAfterMs: 300_000 })
  t.teardown(async () => { await c.stopAll() })
  const [a, b, d] = c.nodes
  const started: string[] = []
  d.queue<string>('handoff').process(async job => {
    started.push(job.payload)
    await new Promise(resolve => job.signal.addEventListener('abort', resolve))
    throw new Error('stopped')
  }, { concurrency: 2, visibilityMs: 600_000 })
  await a.queue<string>('handoff').enqueue('one')
  await a.queue<string>('handoff').enqueue('two')
  await eventually(() => started.length === 2, 10_000, 'd to hold both')
  await d.stop()
  const done: string[] = []
  const p = b.queue<string>('handoff').process(async job => { done.push(job.payload) })
  // The TTL and the visibility are ten minutes: only the give-back can free them.
  await eventually(() => done.length === 2, 15_000, 'the items to be processed on b')
  t.same(done.sort(), ['one', 'two'])
  await p.stop()
})

t.test('a failing item is retried with its attempts counted, then dead-lettered, listed, requeued and purged', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const [a, b] = c.nodes
  const q = a.queue<string>('flaky', { maxAttempts: 3 })
  const attempts: number[] = []
  const p = b.queue<string>('flaky').process(async (job: Job<string>) => {
    attempts.push(job.attempt)
    throw new Error(`failure ${job.attempt}`)
  }, { backoffMs: () => 10, maxAttempts: 3 })
  const failures: string[] = []
  p.on('failed', (job, err) => { failures.push(`${job.id}: ${err.message}`) })
  await q.enqueue('poison', { id: 'p1' })
  await eventually(() => a.status().raft.appliedIndex > 0 && attempts.length === 3, 15_000, 'three attempts')
  await eventually(() => failures.length === 3, 5000, 'three failed events')
  t.same(failures, ['p1: failure 1', 'p1: failure 2', 'p1: failure 3'], 'each failure reported with its error')
  await p.stop()
  await eventually(() => (a.status().raft.appliedIndex >= b.status().raft.appliedIndex), 5000)
  t.same(attempts, [1, 2, 3])
  const dead = await q.deadLetters()
  t.match(dead, [{ id: 'p1', payload: 'poison', attempts: 3, lastError: 'failure 3' }])
  t.equal(await q.requeueDead(), 1)
  const again = await q.claim({ timeoutMs: 10_000 })
  t.equal(again.attempt, 1, 'a requeued item starts over')
  await again.nack()
  await again.nack()
  t.equal(await q.purgeDead(), 0, 'nothing dead now')
})

t.test('a delayed item waits its delay; limits give clear errors', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const [a, b] = c.nodes as [Cluster, Cluster, Cluster]
  const enqueuedAt = Date.now()
  await a.queue<string>('later').enqueue('soon', { delayMs: 500 })
  t.equal(await b.queue('later').tryClaim(), null, 'not before its time')
  const job = await b.queue<string>('later').claim({ timeoutMs: 10_000 })
  t.ok(Date.now() - enqueuedAt >= 500, 'claimed no sooner than its delay (leader stamps on this machine\'s clock)')
  await job.ack()
  await t.rejects(a.queue('big').enqueue('x'.repeat(300 * 1024)), QueueItemTooLargeError)
  await t.rejects(a.queue('big').enqueue('x', { delayMs: -1 }), { name: 'InvalidArgumentError' })
  await t.rejects(a.queue('big').claim({ visibilityMs: 5 }), { name: 'InvalidArgumentError' })
  t.throws(() => a.queue('big').process(async () => {}, { concurrency: 0 }), { name: 'InvalidArgumentError' })
})

t.test('a worker whose jobs all finish together asks for all its slots again: its concurrency holds wave after wave', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  let running = 0
  let most = 0
  const p = c.nodes[1].queue<number>('waves').process(async () => {
    running++
    most = Math.max(most, running)
    await new Promise(resolve => setTimeout(resolve, 100))
    running--
  }, { concurrency: 8 })
  const q = c.nodes[0].queue<number>('waves')
  const peaks: number[] = []
  for (let wave = 0; wave < 3; wave++) {
    most = 0
    const before = p.processed
    await Promise.all(Array.from({ length: 8 }, async (_, i) => { await q.enqueue(i) }))
    await eventually(() => p.processed === before + 8, 15_000, `wave ${wave} processed`)
    peaks.push(most)
  }
  t.same(peaks, [8, 8, 8], 'eight at once in every wave')
  await p.stop()
})

t.test('items go to the slot that has waited longest: with a worker on every node, one item at a time spreads over all three', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const done: number[] = [0, 0, 0]
  const processors = c.nodes.map((n, i) => n.queue<number>('spread').process(async () => { done[i]++ }, { concurrency: 4 }))
  const q = c.nodes[0].queue<number>('spread')
  let waiting = 0
  const polling = setInterval(() => { void q.stats().then(s => { waiting = s.waiting }) }, 20)
  t.teardown(() => { clearInterval(polling) })
  await eventually(() => waiting === 12, 15_000, 'all twelve slots waiting')
  for (let k = 0; k < 12; k++) {
    await q.enqueue(k)
    await eventually(() => done.reduce((a, b) => a + b, 0) === k + 1, 15_000, `item ${k} processed`)
  }
  t.same([...done].sort(), [4, 4, 4], 'each node ran four: a freed slot waits behind the other nodes\' slots')
  await Promise.all(processors.map(async p => { await p.stop() }))
})
