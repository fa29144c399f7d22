/**
 * Three real processes embed a Cluster each (testkit/cluster-processes.ts),
 * enqueue a few thousand items from every node and process them with
 * `process()` on every node, while nodes are SIGKILLed and restarted (a
 * follower, then the leader) and SIGSTOPped past their session TTL (a
 * follower, then the leader). Once the faults stop and the workers have
 * drained the queue, the recorded history must pass the queue checker: no
 * acknowledged enqueue lost, never two live claims on one item, at most one
 * ack per item.
 *
 * Two queues run side by side under the same faults: one whose visibility is
 * shorter than the session TTL (a stalled claim expires on its own first),
 * and one whose visibility is longer (the library's defaults: 30 s against
 * 10 s), where a stalled claimer's items come back when its session ends.
 */
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { ClusterProcesses, machineNow, type HistoryEntry, type QueueState } from '../testkit/cluster-processes.js'
import { checkQueueHistory } from '../testkit/checks/queue-history.js'
import { checkTicks, tickRuns } from '../testkit/checks/tick-history.js'

const TTL = 2000
const TASK = 'tick-200ms'
/**
 * The longest a 200 ms task may go without a run while a majority is up: a
 * runner frozen or killed mid-run holds the task until its session expires
 * (the TTL, counted by a new leader from its election), plus an election and
 * slack for a loaded machine.
 */
const MAX_TICK_GAP_MS = 4 * TTL
const PANIC_AFTER = 1000
const MAX_ATTEMPTS = 50
// Items per producer started with the cluster (one at a time, 80 ms apart: they last through every fault), and per
// producer started again on a restarted node.
const FIRST = 400
const AGAIN = 150
// Long enough that jobs are in hand when a fault lands, and that a leader expiring claims early would catch some.
const WORK_MS = 400
const queues = [
  { name: 'short', visibilityMs: 1500 },
  { name: 'long', visibilityMs: 6000 }
] as const
const WAIT = 30_000

t.test('a worker SIGSTOPped past its session TTL but within its claim\'s visibility sees its claim lost after SIGCONT before it acts again', async t => {
  // The library's defaults have the visibility (30 s) longer than the session TTL (10 s): a stalled claimer's items come
  // back when its session ends, long before its claim's own deadline. A lock handle's valid() checks the session's
  // lease; a job's valid() must too, or a worker resumed after the item went elsewhere still finds it valid.
  const c = await ClusterProcesses.start({ nodes: 3, sessionTtlMs: TTL, panicAfterMs: PANIC_AFTER })
  t.teardown(async () => { await c.stop() })
  const stalled = await c.leader() === 0 ? 1 : 0
  const other = (stalled + 1) % 3
  const queue = 'stall'
  await c.startProcessor(stalled, { queue, maxAttempts: MAX_ATTEMPTS, concurrency: 1, visibilityMs: 6000, workMs: 5000 })
  await Promise.all([
    c.startProducer(other, { queue, idPrefix: 'stall', count: 1, inFlight: 1, maxAttempts: MAX_ATTEMPTS }),
    c.waitFor(e => e.type === 'job-started' && e.node === stalled, WAIT, 'the worker to start the item')
  ])
  c.pause(stalled)
  await c.startProcessor(other, { queue, maxAttempts: MAX_ATTEMPTS, concurrency: 1, visibilityMs: 6000, workMs: 30 })
  // Resumed as soon as the item has moved on: its claim's own deadline (6 s less the margin, from its last extension) is still ahead.
  await c.waitFor(e => e.type === 'job-acked' && e.node === other, WAIT, 'the item to be processed elsewhere once the stalled worker\'s session ended')
  // Read after SIGCONT before any overdue timer (the claim's, the session's, the panic's) has run: as a database
  // reply that came in during the pause would be, and acted on under the claim if valid() passes.
  const touched = c.touchJobs(stalled)
  c.resume(stalled)
  t.comment(`${await touched} job(s) on the stalled worker passed valid() when touched after SIGCONT`)
  const finished = (e: HistoryEntry): boolean => (e.type === 'job-lost' || e.type === 'job-ack-failed' || e.type === 'job-acked') && e.node === stalled
  const end = c.history.find(finished) ?? await c.waitFor(finished, WAIT, 'the stalled worker to finish')
  t.comment(`the stalled worker's job ended: ${JSON.stringify(end, (_k, v: unknown) => typeof v === 'bigint' ? String(v) : v)}`)
  await Promise.all([0, 1, 2].map(async i => { await c.stopWorkloads(i) }))
  const final = await c.queueState(other, queue)
  const violations = checkQueueHistory(c.history, final, { queue, maxAttempts: MAX_ATTEMPTS, minAcked: 1 })
  if (violations.length > 0) t.comment(JSON.stringify(c.history.filter(e => 'queue' in e || e.type === 'paused' || e.type === 'resumed'), (_k, v: unknown) => typeof v === 'bigint' ? String(v) : v))
  t.same(violations, [], 'the stalled worker did nothing as the holder after the item went elsewhere')
})

t.test('three processes enqueue and process a few thousand items, and run a 200 ms task, through SIGKILLs, restarts and SIGSTOPs past the TTL; the histories are correct', async t => {
  const c = await ClusterProcesses.start({ nodes: 3, sessionTtlMs: TTL, panicAfterMs: PANIC_AFTER })
  let finals: QueueState[] = []
  t.teardown(async () => {
    if (!t.passing()) {
      const file = join(tmpdir(), `raftmesh-queue-history-${process.pid}.json`)
      writeFileSync(file, JSON.stringify({ finals, history: c.history }, (_k, v: unknown) => typeof v === 'bigint' ? String(v) : v, 1))
      t.comment(`history written to ${file}`)
    }
    await c.stop()
  })
  let producers = 0
  const work = async (i: number, count: number): Promise<void> => {
    await c.startSchedule(i, { task: TASK, everyMs: 200, workMs: 50 })
    for (const q of queues) {
      await c.startProcessor(i, { queue: q.name, maxAttempts: MAX_ATTEMPTS, concurrency: 8, visibilityMs: q.visibilityMs, workMs: WORK_MS })
      // Ids name the node and the producer, so a restarted node never sends an id again.
      await c.startProducer(i, { queue: q.name, idPrefix: `${c.nodes[i].id}.p${++producers}`, count, inFlight: 1, gapMs: 80, maxAttempts: MAX_ATTEMPTS })
    }
  }
  const started = (i: number, from: number): boolean => c.history.some(e => e.type === 'job-started' && e.node === i && e.at > from && e.valid)
  const busy = async (i: number, what: string): Promise<void> => {
    const from = machineNow()
    if (!started(i, from)) await c.waitFor(e => e.type === 'job-started' && e.node === i && e.valid, WAIT, what)
  }
  const rejoin = async (i: number): Promise<void> => {
    await c.restart(i)
    await work(i, AGAIN)
  }
  for (let i = 0; i < 3; i++) await work(i, FIRST)
  await sleep(3000)

  // Its jobs act once as it resumes, before its timers run (see touchJobs): a job still valid then must still be held.
  const stall = async (i: number): Promise<void> => {
    c.pause(i)
    await sleep(TTL + 1500)
    const touched = c.touchJobs(i)
    c.resume(i)
    await touched
  }
  const follower = async (): Promise<number> => { const l = await c.leader(); return [0, 1, 2].find(i => i !== l) as number }
  const faults: Array<[string, () => Promise<void>]> = [
    ['a follower is SIGKILLed while it works, and restarts', async () => {
      const i = await follower()
      await busy(i, 'the follower to work')
      await c.kill(i)
      await sleep(1000)
      await rejoin(i)
    }],
    ['the leader is SIGKILLed while it works, and restarts', async () => {
      const i = await c.leader()
      await busy(i, 'the leader to work')
      await c.kill(i)
      await sleep(1000)
      await rejoin(i)
    }],
    ['a follower is SIGSTOPped past its session TTL while it works, and resumed', async () => {
      const i = await follower()
      await busy(i, 'the follower to work')
      await stall(i)
    }],
    ['the leader is SIGSTOPped past its session TTL while it works, and resumed', async () => {
      const i = await c.leader()
      await busy(i, 'the leader to work')
      await stall(i)
    }]
  ]
  for (const [what, fault] of faults) {
    await fault()
    t.pass(what)
    await sleep(3000)
  }

  // The faults are over: every producer finishes, then the workers drain both queues.
  const done = async (): Promise<boolean> => {
    const producing = c.history.filter(e => e.type === 'enqueue-sent').map(e => (e as { workload: string, node: number }))
    const live = new Set(producing.map(p => `${p.node}/${p.workload}`))
    for (const e of c.history) {
      if (e.type === 'workload-done' || e.type === 'exited') live.forEach(k => { if (k.startsWith(`${e.node}/`) && (e.type === 'exited' || k === `${e.node}/${e.workload}`)) live.delete(k) })
    }
    return live.size === 0
  }
  const until = machineNow() + WAIT
  while (!await done() && machineNow() < until) await sleep(200)
  const drained = async (): Promise<QueueState[]> => await Promise.all(queues.map(async q => await c.queueState(await c.leader(), q.name)))
  finals = await drained()
  while (finals.some(f => f.stats.depth > 0 || f.stats.inFlight > 0) && machineNow() < until + WAIT) {
    await sleep(250)
    finals = await drained()
  }
  await Promise.all([0, 1, 2].map(async i => { await c.stopWorkloads(i) }))
  finals = await drained()

  const runs = tickRuns(c.history, TASK)
  const tickViolations = checkTicks(runs, { maxGapMs: MAX_TICK_GAP_MS })
  t.same(tickViolations.slice(0, 20), [], `task ${TASK} every 200 ms: ${runs.length} runs on ${new Set(runs.map(r => r.node)).size} nodes, each tick once, fences increasing, no run while another could act, no gap over ${MAX_TICK_GAP_MS} ms`)
  for (const [k, q] of queues.entries()) {
    const violations = checkQueueHistory(c.history, finals[k], { queue: q.name, maxAttempts: MAX_ATTEMPTS, minAcked: FIRST })
    const count = (type: HistoryEntry['type']): number => c.history.filter(e => e.type === type && 'queue' in e && e.queue === q.name).length
    t.same(violations.slice(0, 20), [], `queue ${q.name} (visibility ${q.visibilityMs} ms, TTL ${TTL} ms): ${count('enqueued')} acknowledged enqueues, ${count('job-started')} starts, ${count('job-acked')} acks, ${count('job-lost')} lost and ${count('job-ack-failed')} refused acks; ${finals[k].stats.acked} acks and ${finals[k].deadLetters.length} dead letters on the log`)
  }
})
