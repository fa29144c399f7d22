/**
 * Scenario tests of the Raft core, each named for the rule of the Raft
 * thesis (Ongaro 2014) it covers: elections, replication and client
 * interaction here, reads, snapshots, membership, transfer and restarts in
 * raft-core-state.test.ts. Nodes talk through the synchronous network in
 * helpers/raft-network.ts; where a rule needs a precise interleaving the
 * test drops messages explicitly. Nothing here depends on timers.
 */
import t, { type Test } from 'tap'
import { RaftCore } from '../raft/core/core.js'
import { NotLeaderError } from '../raft/errors.js'
import { Prng } from '../sim/prng.js'
import type { NodeId } from '../raft/types.js'
import type { Message } from '../raft/core/messages.js'
import { bootstrapEntries, bytes, elected, entriesOfTerm, five, four, newNetwork, termAt, three } from './helpers/raft-network.js'

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

t.test('§6.2 check-quorum: a leader nobody hears steps down, even while followers still send it reads', t => {
  const net = elected(three)
  // One way: the followers reach n1, n1 reaches nobody. Their ReadIndex requests prove nothing about that.
  net.drop(m => m.from === 'n1')
  let ticks = 0
  while (net.core('n1').role === 'leader' && ticks < 100) {
    net.send({ type: 'ReadIndex', from: 'n2', to: 'n1', term: net.core('n2').term, ctx: `r${ticks}` })
    net.tick('n1')
    ticks++
  }
  t.equal(net.core('n1').role, 'follower', 'it stepped down')
  t.ok(ticks <= 2 * 10, `within two election timeouts (${ticks} ticks)`)
  t.end()
})

t.test('§4.2.3 with or without check-quorum: followers that heard from a leader recently ignore a disruptive candidate', t => {
  for (const checkQuorum of [true, false]) {
    t.test(`check-quorum ${checkQuorum ? 'on' : 'off'}`, t => { disruptiveCandidate(t, checkQuorum) })
  }
  t.end()
})

t.test('§4.2.3 a follower whose answers arrive just after heartbeat rounds still hears from the leader every heartbeat interval, so it stays in the lease', t => {
  // Seed 7582 of the simulator: with heartbeatTick 3 and electionTick 5, a
  // periodic round skipped every follower that had acknowledged an Append
  // since the previous round, even when that Append had gone out before the
  // previous round. Such a follower heard nothing for two intervals (6 ticks),
  // fell out of the leader's lease, and took the term of a removed voter that
  // campaigned in a loop; each time, the leader was deposed.
  const electionTick = 5
  const net = elected(three, { heartbeatTick: 3, electionTick, preVote: false, checkQuorum: true })
  let maxElapsed = 0
  for (let i = 1; i <= 30 && net.core('n1').role === 'leader'; i++) {
    if (i % 6 === 3) {
      // An Append reaches the followers just before the leader's round; their answers arrive just after it.
      net.core('n1').propose(bytes(`p${i}`))
      net.readyAll()
      net.deliver()
    }
    net.tick(['n1', 'n2', 'n3'])
    maxElapsed = Math.max(maxElapsed, net.core('n2').electionElapsed, net.core('n3').electionElapsed)
  }
  t.equal(net.core('n1').role, 'leader', 'n1 still leads: no follower timed out')
  t.ok(maxElapsed <= 3, `no follower went more than a heartbeat interval without hearing from the leader (at most ${maxElapsed} ticks)`)
  // A removed voter (say n9, whose log stopped before its removal) campaigns in a higher term.
  const term = net.core('n1').term
  for (const to of ['n1', 'n2', 'n3']) net.send({ type: 'Vote', from: 'n9', to, term: term + 5, lastIndex: 100, lastTerm: term, force: false })
  net.stabilize()
  t.same(['n1', 'n2', 'n3'].map(id => net.core(id).term), [term, term, term], 'nobody took the candidate\'s term')
  t.equal(net.core('n1').role, 'leader', 'the leader was not deposed')
  t.end()
})

t.test('a node at a higher term tells a stale leader, which steps down, even without check-quorum and pre-vote', t => {
  const net = elected(three, { preVote: false, checkQuorum: false, log: true })
  const term = net.core('n1').term
  // n3 campaigned alone while cut off: it is two terms ahead, and its votes went unanswered.
  net.isolate('n3')
  net.campaign('n3')
  net.campaign('n3')
  net.recover()
  net.core('n1').propose(bytes('x'))
  net.stabilize()
  t.ok(net.log.some(l => l.startsWith('n3->n1 AppendResp') && l.includes(' reject')), 'n3 answered the stale Append', { story: net.log })
  t.equal(net.core('n1').role, 'follower', 'n1 learnt the newer term from n3\'s answer and stepped down')
  t.equal(net.core('n1').term, term + 2)
  t.end()
})

function disruptiveCandidate (t: Test, checkQuorum: boolean): void {
  const net = elected(three, { preVote: false, checkQuorum, log: true })
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
}

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
  // Each election below deposes a leader the voters heard from moments ago,
  // which §4.2.3 forbids; in the paper time passes in between. Let an
  // election timeout pass on the voters without their hearing from anyone.
  const timeoutPasses = (ids: readonly string[]): void => { for (const id of ids) net.core(id).electionElapsed = 10 }

  // (a) n1 leads term 2; its entry 6 reaches only n2.
  net.drop(m => m.type === 'Append' && m.from === 'n1' && m.to !== 'n2')
  net.campaign('n1')
  net.stabilize()
  t.same([net.core('n1').term, termAt(net, 'n2', 6), net.core('n3').log.lastIndex()], [2, 2, 5])

  // (b) n5 leads term 3 with votes from n3 and n4; its entry 6 stays on n5.
  net.recover()
  net.drop(m => m.type === 'Append')
  timeoutPasses(['n1', 'n2', 'n3', 'n4'])
  net.campaign('n5')
  net.stabilize()
  t.same([net.core('n5').role, net.core('n5').term, termAt(net, 'n5', 6)], ['leader', 3, 3])

  // (c) n5 is down; n1 leads term 4 and copies entry 6 (term 2) to n3, but its own
  // term-4 entry 7 reaches only n2: n3 never stores it and n4 gets nothing.
  net.recover()
  net.isolate('n5')
  net.drop(m => m.type === 'Append' && m.from === 'n1' && m.to === 'n4')
  net.drop(m => m.type === 'Append' && m.to === 'n3' && m.entries.some(e => e.term === 4) && net.core('n3').log.matchTerm(m.prevIndex, m.prevTerm))
  timeoutPasses(['n2', 'n3', 'n4'])
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
  timeoutPasses(['n2', 'n3', 'n4'])
  net.campaign('n5')
  net.stabilize()
  timeoutPasses(['n2', 'n3', 'n4'])
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

t.test('a follower whose answer comes after the others committed its entries is told the commit at once, not at the next heartbeat', t => {
  const net = elected(three)
  const late: Message[] = []
  net.drop(m => {
    if (m.from !== 'n3' || m.type !== 'AppendResp') return false
    late.push(m)
    return true
  })
  net.core('n1').propose(bytes('c'))
  net.stabilize()
  const index = net.core('n1').log.committed
  t.ok(net.core('n3').log.committed < index, 'n2\'s answer committed the entry while n3\'s was still on its way')
  net.recover()
  net.send(...late)
  net.stabilize()
  t.equal(net.core('n3').log.committed, index, 'n3 knows its entry is committed without a tick')
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

t.test('§3.5 a follower commits no further than the last entry the Append vouched for, whatever the leader\'s commit index', t => {
  // n2 holds 4..6 of term 2; the leader of term 3 shares only 4 and has its own 5..6 (term 3), committed.
  const entries = [...bootstrapEntries(three), ...entriesOfTerm(4, 3, 2)]
  const core = new RaftCore({ id: 'n2', random: () => 0.5, state: { hardState: { term: 2, vote: null, commit: 3 }, snapshot: null, entries } })
  core.step({ type: 'Append', from: 'n1', to: 'n2', term: 3, prevIndex: 3, prevTerm: 1, entries: [], commit: 6 })
  t.equal(core.log.committed, 3, 'an empty Append vouches for nothing past prevIndex')
  // Entry 4 matches, so nothing is truncated: the stale 5..6 stay behind it, not vouched for.
  core.step({ type: 'Append', from: 'n1', to: 'n2', term: 3, prevIndex: 3, prevTerm: 1, entries: entriesOfTerm(4, 1, 2), commit: 6 })
  t.equal(core.log.committed, 4, 'min(leaderCommit, prevIndex + entries) = 4, not the stale 6')
  t.match(core.ready().messages.at(-1), { type: 'AppendResp', reject: false, index: 4 }, 'and it acknowledges 4 = prevIndex + entries, not its last index 6')
  t.end()
})

t.test('a follower told that (index, term) is committed commits up to it only when its own entry there has that term', t => {
  // n2 holds 4..6 of term 2; the leader of term 3 has its own 5..6 of term 3, committed.
  const entries = [...bootstrapEntries(three), ...entriesOfTerm(4, 3, 2)]
  const core = new RaftCore({ id: 'n2', random: () => 0.5, state: { hardState: { term: 3, vote: null, commit: 3 }, snapshot: null, entries } })
  core.learnCommitted(6, 3)
  t.equal(core.log.committed, 3, 'a stale entry 6 of term 2 is not the committed entry 6 of term 3')
  core.learnCommitted(9, 2)
  t.equal(core.log.committed, 3, 'an entry it does not hold commits nothing')
  core.learnCommitted(5, 2)
  t.equal(core.log.committed, 5, 'the same (index, term) here: by log matching everything up to it is the leader\'s, so it commits')
  core.learnCommitted(4, 2)
  t.equal(core.log.committed, 5, 'and never goes back')
  t.end()
})

t.test('a leader ignores word of a commit from outside: it counts its own', t => {
  const leader = elected(three).core('n1')
  const { index, term } = leader.propose(bytes('x'))
  const before = leader.log.committed
  leader.learnCommitted(index, term)
  t.equal(leader.log.committed, before, 'an uncommitted entry of its own stays uncommitted until a majority has it')
  t.end()
})

t.test('§5.3 a follower whose log already holds a snapshot\'s last entry acknowledges the snapshot, not its own stale suffix', t => {
  // n2 holds 4..6 of term 2; the leader of term 3 shares 4 and sends a snapshot ending there.
  const entries = [...bootstrapEntries(three), ...entriesOfTerm(4, 3, 2)]
  const core = new RaftCore({ id: 'n2', random: () => 0.5, state: { hardState: { term: 2, vote: null, commit: 3 }, snapshot: null, entries } })
  const data = bytes('state at 4')
  core.step({ type: 'Snapshot', from: 'n1', to: 'n2', term: 3, meta: { index: 4, term: 2, config: { voters: three, learners: [] } }, offset: 0, total: data.byteLength, chunk: data })
  t.match(core.ready().messages.at(-1), { type: 'AppendResp', reject: false, index: 4 }, 'acknowledges 4: its 5..6 were never checked against the leader\'s log')
  t.end()
})
