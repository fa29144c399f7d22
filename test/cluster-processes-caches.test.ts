/**
 * Three real processes embed a Cluster each (testkit/cluster-processes.ts)
 * and run the cache and event workloads: every node writes and reads a
 * replicated cache, bumps its own keys in a shared file "database" and
 * invalidates them in an invalidation cache that every node reads through,
 * and publishes events (some ordered) that every node subscribes to. One
 * follower is SIGKILLed and restarted; another node is SIGSTOPped past its
 * session TTL and resumed. Once the faults are over and the nodes have had
 * time to converge, the histories must pass the checkers
 * (testkit/checks/): the replicated caches equal and last-writer-wins, no
 * stale invalidation-cache read once a node has heard from the writer again,
 * and events complete, unduplicated and in order, or reported lost.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { checkInvalidationCache, checkReplicatedCache, type FinalCache } from '../testkit/checks/cache-history.js'
import { checkEventHistory, needlessGaps } from '../testkit/checks/event-history.js'
import { ClusterProcesses, machineNow, type CacheWorkload } from '../testkit/cluster-processes.js'

const TTL = 2000
const PANIC_AFTER = 1000
const REPLICATED = 'settings'
const INVALIDATION = 'entities'
/** How long the nodes get to agree once the faults and the workloads have stopped. */
const CONVERGE_MS = 15_000

t.test('three processes write caches and publish events through a SIGKILL and restart and a SIGSTOP past the TTL; the histories are correct', async t => {
  const c = await ClusterProcesses.start({ nodes: 3, sessionTtlMs: TTL, panicAfterMs: PANIC_AFTER })
  let finals: FinalCache[] = []
  t.teardown(async () => {
    if (!t.passing()) {
      const file = join(tmpdir(), `raftmesh-cache-history-${process.pid}.json`)
      writeFileSync(file, JSON.stringify({ finals, history: c.history }, (_k, v: unknown) => typeof v === 'bigint' ? String(v) : v, 1))
      t.comment(`history written to ${file}`)
    }
    await c.stop()
  })
  const dbDir = join(c.dir, 'db')
  mkdirSync(dbDir)
  const caches: CacheWorkload = {
    replicated: REPLICATED,
    invalidation: INVALIDATION,
    keys: 6,
    ownKeys: 3,
    nodes: c.nodes.map(n => n.id),
    dbDir,
    gapMs: 40,
    deleteEvery: 7,
    readers: 2,
    loadMs: 5,
    // Besides the exchanges on reconnecting and on gaps, often enough that a lost last update is found within the wait.
    antiEntropyIntervalMs: 1000
  }
  const work = async (i: number): Promise<void> => {
    await c.startCacheWorkload(i, caches)
    await c.startEventWorkload(i, { topic: 'ev', gapMs: 30, orderedEvery: 10 })
  }
  for (let i = 0; i < 3; i++) await work(i)
  await sleep(2000)

  const leader = await c.leader()
  const killed = (leader + 1) % 3
  const stalled = (leader + 2) % 3
  await c.kill(killed)
  await sleep(1000)
  await c.restart(killed)
  await work(killed)
  t.pass(`n${killed + 1} was SIGKILLed and restarted`)
  await sleep(2000)
  c.pause(stalled)
  await sleep(TTL + 1500)
  c.resume(stalled)
  t.pass(`n${stalled + 1} was SIGSTOPped past its session TTL and resumed`)
  // Long enough after the faults for every node to hear from every other again.
  await sleep(3000)
  await Promise.all([0, 1, 2].map(async i => { await c.stopWorkloads(i) }))

  const until = machineNow() + CONVERGE_MS
  const same = (fs: FinalCache[]): boolean => fs.every(f => JSON.stringify(f.entries) === JSON.stringify(fs[0].entries))
  finals = await Promise.all([0, 1, 2].map(async node => ({ node, ...await c.cacheContents(node, REPLICATED) })))
  while (!same(finals) && machineNow() < until) {
    await sleep(200)
    finals = await Promise.all([0, 1, 2].map(async node => ({ node, ...await c.cacheContents(node, REPLICATED) })))
  }

  // Subscriptions outlive the workloads: wait for the last events to arrive (or be reported lost).
  let events = checkEventHistory(c.history, { minReceived: 500 })
  while (events.length > 0 && machineNow() < until) {
    await sleep(200)
    events = checkEventHistory(c.history, { minReceived: 500 })
  }

  const count = (type: string): number => c.history.filter(e => e.type === type).length
  const replicated = checkReplicatedCache(c.history, finals, { cache: REPLICATED, minWrites: 150, minRemoteChanges: 150 })
  t.same(replicated.slice(0, 20), [], `replicated cache: ${count('cache-write')} writes, ${count('cache-read')} reads; ${finals.map(f => `${f.entries.length} keys on n${f.node + 1}`).join(', ')}`)
  const invalidation = checkInvalidationCache(c.history, { cache: INVALIDATION, minReads: 150, minBoundReads: 30 })
  t.same(invalidation.slice(0, 20), [], `invalidation cache: ${count('inv-write')} database writes, ${count('inv-read')} reads`)
  t.same(events.slice(0, 20), [], `events: ${count('event-published')} published, ${count('event-received')} received, ${count('event-gap')} gaps reported`)
  // A fetch that fails while the publisher's connection is replaced (after the pause) is tried again,
  // so nothing the publisher's buffer still holds is reported lost.
  t.same(needlessGaps(c.history, 10_000).slice(0, 20), [], 'no gap reported for events the publisher still had')
})
