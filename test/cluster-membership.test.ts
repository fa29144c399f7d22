import t from 'tap'
import { Cluster } from '../lib/index.js'
import { eventually, startClusters } from './helpers/clusters.js'

t.test('later nodes join as learners and are promoted in pairs to keep an odd voter count; a dead voter is removed', async t => {
  const c = await startClusters(3, { deadVoterAfterMs: 1000 })
  t.teardown(async () => { await c.stopAll() })
  const voters = (): string[] => [...c.leader().raftStatus().config.voters].sort()
  const learners = (): string[] => [...c.leader().raftStatus().config.learners].sort()

  const more = async (i: number): Promise<Cluster> => {
    const opts = c.optionsFor(0)
    const n = await Cluster.start({ ...opts, nodeId: `n${i}`, dataDir: `${c.dirs[0]}-${i}`, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [c.addrs[0]] })
    c.nodes.push(n)
    return n
  }
  const n4 = await more(4)
  t.ok(n4.status().session.id !== null, 'the fourth node started and holds a session')
  t.same(learners(), ['n4'], 'it joined as a learner')
  t.same(voters(), ['n1', 'n2', 'n3'], 'four voters would be even: it stays a learner')
  const h = await n4.lock('from-a-learner').acquire()
  t.ok(h.fence > 0n, 'a learner can take locks (its proposals are forwarded)')
  await h.release()

  await more(5)
  await eventually(() => voters().length === 5, 20_000, 'five voters')
  t.same(voters(), ['n1', 'n2', 'n3', 'n4', 'n5'], 'with a fifth node both are promoted')
  t.same(learners(), [])

  // Three autopilot rounds with nothing to do: the leader's autopilot sleeps, and only n5 leaving can wake it.
  await new Promise(resolve => setTimeout(resolve, 1500))
  const gone = c.nodes.pop() as Cluster
  await gone.stop()
  await eventually(() => !voters().includes('n5'), 20_000, 'n5 to be removed')
  t.same(voters(), ['n1', 'n2', 'n3', 'n4'], 'the voter that left was removed after deadVoterAfterMs')
})

t.test('a stopped node started again from its data directory comes back as the same member', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const old = c.nodes[2]
  const oldSession = old.status().session.id
  await old.stop()
  c.nodes[2] = await Cluster.start(c.optionsFor(2))
  const again = c.nodes[2]
  t.equal(again.id, 'n3', 'same node id, read from the data directory')
  t.not(again.status().session.id, oldSession, 'a new session')
  t.same([...again.raftStatus().config.voters].sort(), ['n1', 'n2', 'n3'], 'still a voter')
  const h = await again.lock('after-restart').acquire()
  await h.release()
  await t.rejects(Cluster.start({ ...c.optionsFor(2), nodeId: 'someone-else' }), { name: 'InvalidArgumentError', message: /belongs to node "n3"/ })
})

t.test('reentrancy is opt-in and scoped to the withLock callback', async t => {
  const c = await startClusters(1)
  t.teardown(async () => { await c.stopAll() })
  const [a] = c.nodes
  await a.withLock('re', async outer => {
    const inner = await a.lock('re', { reentrant: true }).acquire()
    t.equal(inner.fence, outer.fence, 'a reentrant acquire inside withLock gets the held lock and its fence')
    await inner.release()
    t.ok(outer.valid(), 'releasing the nested hold keeps the lock')
    t.equal(await a.lock('re').tryAcquire(), null, 'a non-reentrant request is another holder and does not get it')
  })
  const free = await a.lock('re').tryAcquire()
  t.ok(free !== null, 'the lock is free after withLock')
  await free?.release()
})
