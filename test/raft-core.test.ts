/**
 * Scenario tests of the Raft core, each named for the rule of the Raft
 * thesis (Ongaro 2014) it covers. Nodes talk through the synchronous network
 * in helpers/raft-network.ts; where a rule needs a precise interleaving the
 * test drops messages explicitly. Nothing here depends on timers.
 */
import t from 'tap'
import { RaftCore } from '../raft/core.js'
import { ConfigChangeError, InvalidArgumentError, NotLeaderError, TransferInProgressError } from '../raft/errors.js'
import { Prng } from '../raft/sim/prng.js'
import type { NodeId } from '../raft/types.js'
import { bootstrapEntries, bytes, entriesOfTerm, newNetwork, type Network, type NetworkOptions } from './helpers/raft-network.js'

const three = ['n1', 'n2', 'n3']
const four = ['n1', 'n2', 'n3', 'n4']
const five = ['n1', 'n2', 'n3', 'n4', 'n5']

/** A cluster in which `leader` won the first election and committed its no-op. */
function elected (ids: readonly NodeId[], opts: NetworkOptions = {}, leader = 'n1'): Network {
  const net = newNetwork(ids, opts)
  if (opts.leaseRead === true) {
    // With lease reads a booting node refuses votes for one election timeout.
    for (let i = 0; i < 10; i++) for (const id of ids) net.core(id).tick()
  }
  net.campaign(leader)
  net.stabilize()
  if (net.core(leader).role !== 'leader') throw new Error(`${leader} did not win the first election`)
  return net
}

/** The term of entry `index` in a node's log. */
const termAt = (net: Network, id: NodeId, index: number): number | undefined => net.core(id).log.term(index)

// ---- §3.4 leader election ---------------------------------------------------

t.test('§3.4 a follower that times out campaigns and wins with votes from a majority', t => {
  const net = newNetwork(three)
  net.isolate('n3')
  // The randomised timeout is in [electionTick, 2 * electionTick): 20 ticks always fire it.
  net.tick('n1', 20)
  t.equal(net.core('n1').role, 'leader', 'n1 won with its own vote and n2\'s')
  t.equal(net.core('n1').term, 2)
  t.equal(net.core('n2').leader, 'n1')
  t.equal(net.core('n3').term, 1, 'the unreachable node took no part')
  t.end()
})

t.test('§3.4 a split vote elects nobody, and a later timeout retries in a new term', t => {
  // Four voters without pre-vote: n1 reaches n3, n2 reaches n4, each gets 2 of 4 votes.
  const net = newNetwork(four, { preVote: false })
  net.cut('n1', 'n4')
  net.cut('n2', 'n3')
  net.campaign('n1')
  net.campaign('n2')
  net.stabilize()
  t.equal(net.leader(), null, 'no candidate reached a majority')
  t.same([net.core('n1').role, net.core('n2').role], ['candidate', 'candidate'])
  t.equal(net.core('n1').term, 2)

  net.recover()
  const leader = net.tickUntilLeader(four)
  t.ok(net.core(leader).term >= 3, `${leader} won a later term after a randomised timeout`)
  t.end()
})

t.test('§3.4 election safety: at most one leader per term under random partitions and timeouts', t => {
  let termsWithLeader = 0
  for (let seed = 1; seed <= 20; seed++) {
    // Neither pre-vote nor check-quorum, short timeouts and skipped ticks (uneven clocks):
    // the most elections, the most chances to break the rule.
    const net = newNetwork(five, { seed, preVote: false, checkQuorum: false, electionTick: 4 })
    const rng = new Prng(seed)
    for (let step = 0; step < 300; step++) {
      const r = rng.next()
      if (r < 0.04) net.recover()
      else if (r < 0.08) net.isolate(rng.pick(five))
      else if (r < 0.12) net.cut(rng.pick(five), rng.pick(five))
      else if (r < 0.2) {
        const leader = net.leader()
        if (leader !== null) net.core(leader).propose(bytes(`s${seed}-${step}`))
        net.stabilize()
      } else net.tick(five.filter(() => rng.chance(0.7)))
    }
    for (const [term, leaders] of net.leadersByTerm) {
      t.ok(leaders.size <= 1, `seed ${seed} term ${term}: leaders ${[...leaders].join(',')}`)
    }
    termsWithLeader += net.leadersByTerm.size
  }
  t.ok(termsWithLeader > 100, `the schedules produced many elections (${termsWithLeader})`)
  t.end()
})

// ---- §9.6 pre-vote ------------------------------------------------------------

t.test('§9.6 pre-vote: a partitioned node rejoining neither raises the term nor disrupts the leader', t => {
  const net = elected(three)
  const term = net.core('n1').term
  net.isolate('n3')
  net.tick(three, 50)
  t.equal(net.core('n3').term, term, 'five election timeouts alone did not raise n3\'s term')
  t.equal(net.core('n3').role, 'preCandidate', 'n3 kept asking for pre-votes')

  net.recover()
  net.tick(three)
  t.equal(net.core('n1').role, 'leader', 'the leader kept its place')
  t.equal(net.core('n1').term, term, 'the cluster\'s term did not move')
  t.same([net.core('n3').role, net.core('n3').leader], ['follower', 'n1'], 'n3 follows the leader again')

  // The same partition without pre-vote: n3 inflates its term and deposes the leader on return.
  const noPreVote = elected(three, { preVote: false })
  noPreVote.isolate('n3')
  noPreVote.tick(three, 50)
  const inflated = noPreVote.core('n3').term
  t.ok(inflated > term, 'without pre-vote the isolated node raised its term')
  noPreVote.recover()
  noPreVote.tick(three)
  t.not(noPreVote.core('n1').role, 'leader', 'and on its return the leader was deposed')
  t.ok(noPreVote.core('n1').term >= inflated, 'into the inflated term')
  t.end()
})

// ---- §6.2 check-quorum ----------------------------------------------------------

t.test('§6.2 check-quorum: an isolated leader steps down by the end of the next check window', t => {
  const net = elected(three)
  // A leader that hears from a majority stays.
  net.isolate('n3')
  net.tick('n1', 50)
  t.equal(net.core('n1').role, 'leader', 'a leader hearing from n2 keeps leading')

  net.recover()
  net.isolate('n1')
  let ticks = 0
  while (net.core('n1').role === 'leader' && ticks < 100) {
    net.tick('n1')
    ticks++
  }
  t.equal(net.core('n1').role, 'follower', 'the isolated leader stepped down on its own')
  // The check before isolation saw the majority; the next full window does not.
  t.ok(ticks <= 2 * 10, `within two election timeouts of its last contact (${ticks} ticks)`)
  const next = net.tickUntilLeader(['n2', 'n3'])
  t.ok(net.core(next).term > net.core('n1').term, 'the majority elected a leader in a newer term')
  t.end()
})

t.test('§4.2.3 check-quorum: followers that heard from a leader recently ignore a disruptive candidate', t => {
  const net = elected(three, { preVote: false, log: true })
  const term = net.core('n1').term
  const vote = net.core('n2').vote
  const mark = net.log.length
  net.campaign('n3')
  net.stabilize()
  t.equal(net.core('n3').term, term + 1, 'n3 campaigned in a new term')
  t.equal(net.core('n1').role, 'leader', 'the leader ignored the vote request')
  t.same([net.core('n1').term, net.core('n2').term], [term, term], 'nobody adopted the candidate\'s term')
  t.equal(net.core('n2').vote, vote, 'n2 did not vote again')
  t.notOk(net.log.slice(mark).some(l => l.includes('VoteResp')), 'the vote requests went unanswered')
  t.end()
})

// ---- §3.5 log replication ----------------------------------------------------------

t.test('§3.5 the leader replicates entries, commits them on a majority, and a lagging follower catches up', t => {
  const net = elected(three)
  for (const v of ['a', 'b', 'c']) net.core('n1').propose(bytes(v))
  net.stabilize()
  t.same(net.node('n1').values, ['a', 'b', 'c'], 'the leader applies once a majority has the entries')
  // Followers learn the commit index from the next Append or heartbeat.
  net.tick('n1')
  for (const id of three) t.same(net.node(id).values, ['a', 'b', 'c'], `${id} applied a, b, c`)

  net.isolate('n3')
  const { index } = net.core('n1').propose(bytes('d'))
  net.core('n1').propose(bytes('e'))
  net.stabilize()
  t.ok(net.core('n1').log.committed >= index + 1, 'n1 and n2 are a majority')
  t.same(net.node('n3').values, ['a', 'b', 'c'], 'the cut-off follower has nothing new')

  net.recover()
  net.tick('n1')
  for (const id of three) {
    t.same(net.node(id).values, ['a', 'b', 'c', 'd', 'e'], `${id} applied everything`)
    t.same(net.node(id).durable.entries.map(e => [e.index, e.term]), net.node('n1').durable.entries.map(e => [e.index, e.term]), `${id}'s disk holds the leader's log`)
  }
  t.end()
})

t.test('§3.6.2 Figure 8: a leader does not commit an entry of an earlier term by counting replicas', t => {
  // Five servers; bootstrap entries 1..5 are committed in term 1. No pre-vote or
  // check-quorum, as in the paper; one entry per Append so deliveries can be split.
  const net = newNetwork(five, { preVote: false, checkQuorum: false, maxEntriesPerMsg: 1, log: true })

  // (a) n1 leads term 2; its entry 6 reaches only n2.
  net.drop(m => m.type === 'Append' && m.from === 'n1' && m.to !== 'n2')
  net.campaign('n1')
  net.stabilize()
  t.same([net.core('n1').term, termAt(net, 'n2', 6), net.core('n3').log.lastIndex()], [2, 2, 5])

  // (b) n5 leads term 3 with votes from n3 and n4; its entry 6 stays on n5.
  net.recover()
  net.drop(m => m.type === 'Append')
  net.campaign('n5')
  net.stabilize()
  t.same([net.core('n5').role, net.core('n5').term, termAt(net, 'n5', 6)], ['leader', 3, 3])

  // (c) n5 is down; n1 leads term 4 and copies entry 6 (term 2) to n3, but its own
  // term-4 entry 7 reaches only n2: n3 never stores it and n4 gets nothing.
  net.recover()
  net.isolate('n5')
  net.drop(m => m.type === 'Append' && m.from === 'n1' && m.to === 'n4')
  net.drop(m => m.type === 'Append' && m.to === 'n3' && m.entries.some(e => e.term === 4) && net.core('n3').log.matchTerm(m.prevIndex, m.prevTerm))
  net.campaign('n1')
  net.stabilize()
  t.same([net.core('n1').role, net.core('n1').term], ['leader', 4])
  t.same(['n1', 'n2', 'n3'].map(id => termAt(net, id, 6)), [2, 2, 2], 'entry 6 of term 2 is on a majority')
  t.equal(net.core('n1').status().progress.n3.match, 6, 'and the leader knows it')
  t.equal(net.core('n1').log.committed, 5, 'yet the leader does not commit it: it is not of its term', { story: net.log })

  // (d) n1 crashes; n5 restarts and wins term 5 (its first try, in term 4, meets
  // voters who already voted for n1), then overwrites entry 6 everywhere.
  net.recover()
  net.isolate('n1')
  net.restart('n5')
  net.campaign('n5')
  net.stabilize()
  net.campaign('n5')
  net.stabilize()
  t.same([net.leader(), net.core('n5').term], ['n5', 5], 'n5 won with votes from n3 and n4', { story: net.log })
  net.tick('n5')
  for (const id of ['n2', 'n3', 'n4', 'n5']) {
    t.equal(termAt(net, id, 6), 3, `${id} holds n5's entry 6`)
    t.ok(net.core(id).log.committed >= 7, `${id} committed past it`)
  }
  for (const id of five) {
    t.notOk(net.node(id).applied.some(e => e.index === 6 && e.term === 2), `${id} never applied the overwritten entry`)
  }
  t.end()
})

// ---- §3.5 conflict resolution ---------------------------------------------------------

t.test('§3.5 a divergent suffix is truncated, and the conflict hint skips a whole term per round trip', t => {
  const boot = bootstrapEntries(three)
  const leaderLog = [...boot, ...entriesOfTerm(4, 100, 5)]
  // n2 led terms 2, 3 and 4 without replicating anything: 100 entries that conflict with n1's.
  const followerLog = [...boot, ...entriesOfTerm(4, 40, 2), ...entriesOfTerm(44, 40, 3), ...entriesOfTerm(84, 20, 4)]
  const net = newNetwork(three, {
    log: true,
    states: {
      n1: { hardState: { term: 5, vote: null, commit: 3 }, snapshot: null, entries: leaderLog },
      n2: { hardState: { term: 4, vote: null, commit: 3 }, snapshot: null, entries: followerLog },
      n3: { hardState: { term: 5, vote: null, commit: 3 }, snapshot: null, entries: leaderLog }
    }
  })
  net.campaign('n1')
  net.stabilize()
  const rejections = net.log.filter(l => l.startsWith('n2->n1 AppendResp') && l.includes(' reject '))
  t.equal(rejections.length, 3, 'one rejection per divergent term (2, 3, 4), not one per entry', { story: net.log })
  const shape = (id: NodeId): number[][] => net.node(id).durable.entries.map(e => [e.index, e.term])
  t.same(shape('n2'), shape('n1'), 'n2\'s divergent suffix was replaced by the leader\'s')
  t.equal(net.core('n2').log.committed, net.core('n1').log.committed)

  // A follower that simply lacks 100 entries of an old term needs a single rejection.
  const missing = newNetwork(three, {
    log: true,
    states: {
      n1: { hardState: { term: 2, vote: null, commit: 3 }, snapshot: null, entries: [...boot, ...entriesOfTerm(4, 100, 2)] },
      n2: { hardState: { term: 1, vote: null, commit: 3 }, snapshot: null, entries: boot },
      n3: { hardState: { term: 2, vote: null, commit: 3 }, snapshot: null, entries: [...boot, ...entriesOfTerm(4, 100, 2)] }
    }
  })
  missing.campaign('n1')
  missing.stabilize()
  t.equal(missing.log.filter(l => l.startsWith('n2->n1 AppendResp') && l.includes(' reject ')).length, 1)
  t.equal(missing.core('n2').log.lastIndex(), 104, 'n2 has the 100 entries and the new leader\'s no-op')
  t.end()
})

// ---- §10.2.1 pipelining ------------------------------------------------------------------

t.test('§10.2.1 pipelining: a follower in replicate state gets up to maxInflight Appends before any reply', t => {
  for (const [maxInflight, expected] of [[8, 5], [1, 1]]) {
    const net = elected(three, { maxInflight, maxEntriesPerMsg: 1 })
    const values = ['p0', 'p1', 'p2', 'p3', 'p4']
    for (const v of values) net.core('n1').propose(bytes(v))
    const appends = net.readyAll().filter(m => m.type === 'Append' && m.to === 'n2')
    t.equal(appends.length, expected, `maxInflight ${maxInflight}: ${expected} Appends in flight`)
    net.stabilize()
    net.tick('n1')
    t.same(net.node('n2').values, values, `maxInflight ${maxInflight}: everything arrives in the end`)
  }
  t.end()
})

t.test('a new commit index reaches a follower with nothing in flight as a Commit notice, which asks for no reply', t => {
  const net = elected(three, { log: true })
  net.log.length = 0
  net.core('n1').propose(bytes('c'))
  net.stabilize()
  const index = net.core('n1').log.committed
  const notices = net.log.filter(l => / Commit /.test(l))
  t.ok(notices.length >= 1, 'the commit travels as a notice')
  t.ok(notices.every(l => l.endsWith(`commit=${index}`)), 'carrying the new commit index')
  t.equal(net.log.filter(l => /^n[23]->n1 AppendResp/.test(l)).length, 2, 'one answer per follower: to the Append, not to the notice')
  t.same(['n2', 'n3'].map(id => net.core(id).log.committed), [index, index], 'both followers know the commit index')
  // A notice from a stale leader is answered with the newer term, so it steps down.
  net.core('n2').step({ type: 'Commit', from: 'n9', to: 'n2', term: 1, commit: 1 })
  t.match(net.readyAll().find(m => m.from === 'n2' && m.to === 'n9'), { type: 'AppendResp', reject: true }, 'a stale notice is refused')
  t.end()
})

// ---- §6.2 client interaction ------------------------------------------------------------

t.test('§6.2 a proposal on a non-leader throws NotLeaderError naming the leader it knows', t => {
  const fresh = newNetwork(three)
  const none = t.throws(() => fresh.core('n1').propose(bytes('x')), NotLeaderError)
  t.equal((none as NotLeaderError).leader, null, 'before any election no leader is known')

  const net = elected(three)
  const err = t.throws(() => net.core('n2').propose(bytes('x')), NotLeaderError)
  t.equal((err as NotLeaderError).leader, 'n1', 'a follower points at the leader')
  t.end()
})

// ---- §6.4 read-only queries ---------------------------------------------------------------

t.test('§6.4 ReadIndex', async t => {
  t.test('on the leader the read is answered only after a heartbeat round', t => {
    const net = elected(three)
    const commit = net.core('n1').log.committed
    net.core('n1').readIndex('r1')
    const sent = net.readyAll()
    t.same(net.node('n1').readStates, [], 'no answer before the round')
    t.ok(sent.some(m => m.type === 'Heartbeat' && m.readSeq === 1), 'a heartbeat round carries the read')
    net.stabilize()
    t.same(net.node('n1').readStates, [{ ctx: 'r1', index: commit }])
    t.end()
  })

  t.test('forwarded from a follower, the answer follows the leader\'s heartbeat round', t => {
    const net = elected(three, { log: true })
    const commit = net.core('n1').log.committed
    net.core('n2').readIndex('r2')
    net.stabilize()
    t.same(net.node('n2').readStates, [{ ctx: 'r2', index: commit }])
    const acked = net.log.findIndex(l => /^n[23]->n1 HeartbeatResp term=\d+ readSeq=1$/.test(l))
    const answered = net.log.findIndex(l => l.startsWith('n1->n2 ReadIndexResp'))
    t.ok(acked >= 0 && acked < answered, 'a follower confirmed the round before the answer', { story: net.log })
    t.end()
  })

  t.test('a leader that cannot reach a majority never confirms; it refuses once it steps down', t => {
    const net = elected(three)
    net.isolate('n1')
    net.core('n1').readIndex('r3')
    net.stabilize()
    t.same(net.node('n1').readStates, [], 'no answer while isolated')
    let ticks = 0
    while (net.core('n1').role === 'leader' && ticks++ < 100) net.tick('n1')
    t.same(net.node('n1').readStates, [{ ctx: 'r3', index: -1 }], 'refused (-1) when it stepped down, never confirmed')
    t.end()
  })

  t.test('a leader that has not committed an entry of its term delays the read until it has', t => {
    const net = newNetwork(three, { log: true })
    net.drop(m => m.type === 'Append')
    net.campaign('n1')
    net.stabilize()
    t.same([net.core('n1').role, net.core('n1').log.committed], ['leader', 3], 'n1 leads; its no-op (4) is not committed')
    net.core('n1').readIndex('r4')
    net.stabilize()
    t.same(net.node('n1').readStates, [], 'the read waits')
    t.notOk(net.log.some(l => l.includes('readSeq=1')), 'not even a heartbeat round is started')
    net.recover()
    net.tick('n1')
    t.same(net.node('n1').readStates, [{ ctx: 'r4', index: 4 }], 'answered at the no-op once it committed')
    t.end()
  })
})

t.test('§6.4.1 lease reads require check-quorum and, once a heartbeat round confirmed the lease, skip the next round', t => {
  t.throws(() => new RaftCore({ id: 'n1', random: () => 0.5, leaseRead: true, checkQuorum: false }), InvalidArgumentError)
  const net = elected(three, { leaseRead: true })
  net.tick('n1')
  const commit = net.core('n1').log.committed
  net.core('n1').readIndex('lease')
  const sent = net.readyAll()
  t.same(net.node('n1').readStates, [{ ctx: 'lease', index: commit }], 'answered at once')
  t.notOk(sent.some(m => m.type === 'Heartbeat'), 'without a heartbeat round')
  t.end()
})

t.test('§6.4.1 a lease read is not served by a leader that a newer leader has replaced', t => {
  // The last check-quorum window saw a majority (the election itself), so n1 keeps
  // leading for two election timeouts; n2 and n3 elect a leader after one or two.
  const net = elected(three, { leaseRead: true })
  net.isolate('n1')
  const next = net.tickUntilLeader(three, ['n2', 'n3'])
  t.equal(net.core('n1').role, 'leader', 'precondition: n1 has not noticed yet')
  const { index } = net.core(next).propose(bytes('w'))
  net.stabilize()
  t.ok(net.core(next).log.committed >= index, `${next} committed w at ${index}`)
  net.core('n1').readIndex('stale')
  net.readyAll()
  const stale = net.node('n1').readStates.filter(r => r.index >= 0 && r.index < index)
  t.same(stale, [], 'no read is served at an index that misses a committed write')
  t.end()
})

// ---- §5.3 / §3.10 snapshots --------------------------------------------------------------

t.test('§5.3 a follower behind the leader\'s snapshot receives it in chunks and ends with the same state', t => {
  const net = elected(three, { snapshotChunkBytes: 16, log: true })
  net.isolate('n3')
  const values = Array.from({ length: 20 }, (_, i) => `v${i}`)
  for (const v of values) net.core('n1').propose(bytes(v))
  net.stabilize()
  const snap = net.compact('n1')
  t.ok(snap.data.byteLength > 16 * 3, 'the snapshot needs several chunks')

  net.recover()
  net.tick('n1')
  const chunks = net.log.filter(l => l.startsWith('n1->n3 Snapshot'))
  t.ok(chunks.length >= Math.ceil(snap.data.byteLength / 16), `sent in ${chunks.length} chunks`)
  t.same(net.node('n3').values, values, 'n3 restored the leader\'s state')
  t.equal(net.core('n3').log.snapshotIndex, snap.meta.index)
  t.same(net.node('n3').durable.snapshot?.meta, snap.meta, 'and persisted the snapshot')

  net.core('n1').propose(bytes('after'))
  net.stabilize()
  t.same(net.node('n3').values, [...values, 'after'], 'replication resumes after the snapshot')
  t.end()
})

// ---- §4 membership changes ----------------------------------------------------------------

t.test('§4.2.1 a learner receives the log but neither counts for commit nor votes', t => {
  const net = elected(four, { bootstrap: three, log: true })
  net.core('n1').proposeConfChange({ type: 'addLearner', node: 'n4' })
  net.stabilize()
  t.same(net.core('n4').config, { voters: three, learners: ['n4'] }, 'n4 learned the configuration from the log')
  t.equal(net.core('n4').log.lastIndex(), net.core('n1').log.lastIndex(), 'and holds the whole log')

  net.cut('n1', 'n2')
  net.cut('n1', 'n3')
  const { index } = net.core('n1').propose(bytes('x'))
  net.stabilize()
  t.equal(net.core('n4').log.lastIndex(), index, 'the learner stored the entry')
  t.ok(net.core('n1').log.committed < index, 'but its copy does not make a majority')

  net.recover()
  net.isolate('n1')
  const leader = net.tickUntilLeader(['n2', 'n3', 'n4'])
  t.not(leader, 'n4', 'the learner never campaigned')
  const votes = net.log.filter(l => /^\S+->\S+ (PreVote|Vote) /.test(l))
  t.ok(votes.length > 0, 'the voters held an election')
  t.notOk(votes.some(l => l.startsWith('n4->') || l.includes('->n4 ')), 'without asking the learner', { story: votes })
  t.end()
})

t.test('§4.2.1 a promoted learner counts toward the majority', t => {
  const net = elected(four, { bootstrap: three })
  net.core('n1').proposeConfChange({ type: 'addLearner', node: 'n4' })
  net.stabilize()
  net.core('n1').proposeConfChange({ type: 'promoteLearner', node: 'n4' })
  net.stabilize()
  for (const id of four) t.same(net.core(id).config, { voters: four, learners: [] }, `${id} sees four voters`)
  // n1, n3 and n4 are three of four voters: the entry commits only because n4 counts.
  net.cut('n1', 'n2')
  const { index } = net.core('n1').propose(bytes('y'))
  net.stabilize()
  t.ok(net.core('n1').log.committed >= index, 'committed with n4\'s vote')
  t.end()
})

t.test('§4.2.2 a leader that removes itself leads until the removal commits, then steps down', t => {
  const net = elected(three)
  const term = net.core('n1').term
  net.core('n1').proposeConfChange({ type: 'removeNode', node: 'n1' })
  net.readyAll()
  t.equal(net.core('n1').role, 'leader', 'still leading while the removal is uncommitted')
  net.stabilize()
  t.equal(net.core('n1').role, 'follower', 'stepped down once it committed')
  for (const id of three) t.same(net.core(id).config.voters, ['n2', 'n3'], `${id} applied the removal`)
  const next = net.tickUntilLeader(three, ['n2', 'n3'])
  t.ok(net.core(next).term > term, `${next} leads the remaining voters`)
  const ledAgain = [...net.leadersByTerm].some(([tm, ids]) => tm > term && ids.has('n1'))
  t.notOk(ledAgain, 'the removed node never campaigned again')
  t.end()
})

t.test('§4.1 one membership change at a time, and none before the leader commits in its term', t => {
  const net = elected(four, { bootstrap: three })
  net.core('n1').proposeConfChange({ type: 'addLearner', node: 'n4' })
  t.throws(() => net.core('n1').proposeConfChange({ type: 'removeNode', node: 'n3' }), ConfigChangeError, 'a second change while the first is pending')
  net.stabilize()
  net.core('n1').proposeConfChange({ type: 'removeNode', node: 'n3' })
  net.stabilize()
  t.same(net.core('n1').config, { voters: ['n1', 'n2'], learners: ['n4'] }, 'accepted once the first committed')

  const fresh = newNetwork(three)
  fresh.drop(m => m.type === 'Append')
  fresh.campaign('n1')
  fresh.stabilize()
  t.equal(fresh.core('n1').role, 'leader')
  t.throws(() => fresh.core('n1').proposeConfChange({ type: 'removeNode', node: 'n3' }), ConfigChangeError, 'refused before the no-op commits')
  fresh.recover()
  fresh.tick('n1')
  fresh.core('n1').proposeConfChange({ type: 'removeNode', node: 'n3' })
  fresh.stabilize()
  t.same(fresh.core('n1').config.voters, ['n1', 'n2'], 'accepted after it committed')
  t.end()
})

// ---- §3.10 leadership transfer ------------------------------------------------------------

t.test('§3.10 leadership transfer to an up-to-date follower completes at once via TimeoutNow', t => {
  const net = elected(three, { log: true })
  const term = net.core('n1').term
  net.core('n1').transferLeadership('n2')
  t.throws(() => net.core('n1').propose(bytes('x')), TransferInProgressError, 'proposals are refused during the transfer')
  net.stabilize()
  t.equal(net.leader(), 'n2', 'n2 leads without any tick')
  t.equal(net.core('n2').term, term + 1)
  t.ok(net.log.some(l => l.startsWith('n1->n2 TimeoutNow')))
  t.ok(net.log.some(l => /^n2->n3 Vote .* force$/.test(l)), 'the forced vote passes n3\'s leader lease')
  t.end()
})

t.test('§3.10 leadership transfer to a lagging follower first catches it up', t => {
  const net = elected(three, { log: true })
  net.isolate('n3')
  const values = ['p0', 'p1', 'p2', 'p3', 'p4']
  for (const v of values) net.core('n1').propose(bytes(v))
  net.stabilize()
  net.recover()
  const last = net.core('n1').log.lastIndex()
  net.core('n1').transferLeadership('n3')
  const first = net.readyAll().filter(m => m.to === 'n3')
  t.same(first.map(m => m.type), ['Append'], 'an Append, not TimeoutNow, goes first')
  net.stabilize()
  t.equal(net.leader(), 'n3')
  t.same(net.node('n3').values, values, 'n3 has every entry')
  const caughtUp = net.log.findIndex(l => l === `n3->n1 AppendResp term=2 index=${last}`)
  const timeoutNow = net.log.findIndex(l => l.startsWith('n1->n3 TimeoutNow'))
  t.ok(caughtUp >= 0 && caughtUp < timeoutNow, 'TimeoutNow only after n3 matched the leader\'s last index', { story: net.log })
  t.end()
})

// ---- §3.8 persisted state and server restarts ---------------------------------------------------

t.test('§3.8 a restarted node recovers its term, vote and log, and does not vote twice in a term', t => {
  const net = newNetwork(three, { preVote: false, log: true })
  net.cut('n2', 'n3')
  net.drop(m => m.type === 'Append')
  net.campaign('n2')
  net.stabilize()
  t.same([net.core('n1').term, net.core('n1').vote], [2, 'n2'], 'n1 voted for n2 in term 2')
  const log = net.node('n1').durable.entries.map(e => [e.index, e.term])

  net.restart('n1')
  t.same([net.core('n1').term, net.core('n1').vote], [2, 'n2'], 'term and vote came back from disk')
  t.same(net.node('n1').durable.entries.map(e => [e.index, e.term]), log)
  t.equal(net.core('n1').log.lastIndex(), log.length)

  // n3 has as good a log and campaigns in the same term: n1 has already voted.
  net.campaign('n3')
  net.stabilize()
  t.equal(net.core('n3').term, 2)
  t.ok(net.log.includes('n1->n3 VoteResp term=2 rejected'), 'n1 refused a second vote in term 2', { story: net.log })
  t.not(net.core('n3').role, 'leader')

  // Committed entries come back too and are applied again from the log.
  const cluster = elected(three)
  for (const v of ['a', 'b']) cluster.core('n1').propose(bytes(v))
  cluster.stabilize()
  cluster.restart('n2')
  cluster.stabilize()
  t.same(cluster.node('n2').values, ['a', 'b'], 'n2 re-applied its committed entries')
  t.end()
})

t.test('§3.3 messages from an old term are ignored, and their sender learns the new term', t => {
  const net = elected(three, { log: true })
  const oldTerm = net.core('n1').term
  net.isolate('n1')
  net.core('n1').propose(bytes('stale'))
  const staleAppends = net.readyAll().filter(m => m.type === 'Append')
  net.stabilize()
  const next = net.tickUntilLeader(['n2', 'n3'])
  const other = next === 'n2' ? 'n3' : 'n2'
  const newTerm = net.core(next).term

  net.recover()
  const mark = net.log.length
  net.send(...staleAppends.filter(m => m.to === other))
  net.send({ type: 'Vote', from: 'n1', to: other, term: oldTerm, lastIndex: 100, lastTerm: oldTerm, force: false })
  net.stabilize()
  t.equal(net.core(other).leader, next, `${other} still follows ${next}`)
  t.notOk(net.node(other).durable.entries.some(e => new TextDecoder().decode(e.data) === 'stale'), 'the stale entry was not appended')
  t.notOk(net.log.slice(mark).some(l => l.startsWith(`${other}->n1 VoteResp`)), 'the stale vote request got no answer')
  t.same([net.core('n1').role, net.core('n1').term], ['follower', newTerm], 'the stale leader stepped down into the new term')
  t.end()
})

t.test('§3.8 after a torn write a node starts in at least the term of its last entry', t => {
  // The entries of term 3 reached the disk; the hard state written with them did not.
  const entries = [...bootstrapEntries(three), ...entriesOfTerm(4, 2, 3)]
  const core = new RaftCore({ id: 'n1', random: () => 0.5, state: { hardState: { term: 1, vote: 'n2', commit: 3 }, snapshot: null, entries } })
  t.same([core.term, core.vote], [3, null], 'term 3, and the term-1 vote binds nothing in it')
  core.step({ type: 'Append', from: 'n2', to: 'n1', term: 2, prevIndex: 5, prevTerm: 3, entries: [], commit: 3 })
  const rd = core.ready()
  t.equal(rd.hardState?.term, 3, 'the repaired term is persisted')
  t.match(rd.messages, [{ type: 'AppendResp', term: 3, reject: true }], 'a leader of term 2 is refused')
  t.end()
})
