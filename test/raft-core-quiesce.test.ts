/**
 * Quiescence (raft/core/quiescence.ts): an idle leader stops heartbeats and
 * its followers stop their election timers; the transport's reports
 * (reportUnreachable) and any sign of life from a follower wake the group.
 * Each scenario covers one rule and fails without it.
 */
import t from 'tap'
import { RaftCore } from '../raft/core/core.js'
import { InvalidArgumentError } from '../raft/errors.js'
import type { Message } from '../raft/core/messages.js'
import type { NodeId } from '../raft/types.js'
import { bytes, elected, five, type Network, type NetworkOptions, three } from './helpers/raft-network.js'

const QUIET = 3

/** An elected group, ticked until the leader quiesced it; every message sent is kept in `sent`. */
function quiesced (ids: readonly NodeId[], opts: NetworkOptions = {}): { net: Network, sent: Message[] } {
  const net = elected(ids, { quiesceAfterTicks: QUIET, ...opts })
  const sent: Message[] = []
  net.drop(m => { sent.push(m); return false })
  for (let i = 0; i < 20 && !allQuiet(net, ids); i++) net.tick(ids)
  if (!allQuiet(net, ids)) throw new Error('the group did not quiesce')
  return { net, sent }
}

function allQuiet (net: Network, ids: readonly NodeId[]): boolean {
  const leader = net.core('n1')
  return leader.leaderState?.quiet.quiesced === true && ids.every(id => id === 'n1' || net.core(id).quiesced)
}

t.test('an idle leader sends one marked heartbeat round, then nothing, and nobody campaigns', t => {
  const { net, sent } = quiesced(three)
  const marked = sent.filter(m => m.type === 'Heartbeat' && m.quiesce)
  t.same(marked.map(m => m.to).sort(), ['n2', 'n3'], 'one quiesce heartbeat to each follower')
  sent.length = 0
  net.tick(three, 200)
  t.same(sent, [], 'no message in 200 ticks (20 election timeouts)')
  t.equal(net.core('n1').role, 'leader', 'check-quorum does not depose a quiesced leader')
  t.equal(net.core('n1').term, 2)
  t.same([net.core('n2').electionElapsed, net.core('n3').electionElapsed], [0, 0], 'the followers\' timers stand still')
  t.end()
})

t.test('without the option, heartbeats never stop', t => {
  const net = elected(three)
  const sent: Message[] = []
  net.drop(m => { sent.push(m); return false })
  net.tick(three, 50)
  t.ok(sent.filter(m => m.type === 'Heartbeat').length >= 50, 'heartbeats every tick')
  t.notOk(sent.some(m => m.type === 'Heartbeat' && m.quiesce), 'none marked')
  t.end()
})

t.test('a leader does not quiesce while a follower is behind', t => {
  const net = elected(three, { quiesceAfterTicks: QUIET })
  const sent: Message[] = []
  net.drop(m => { sent.push(m); return false })
  net.isolate('n3')
  net.core('n1').propose(bytes('x'))
  net.stabilize()
  net.tick(three, 30)
  t.ok(net.core('n1').log.committed > net.core('n3').log.lastIndex(), 'n3 missed a committed entry')
  t.notOk(sent.some(m => m.type === 'Heartbeat' && m.quiesce), 'no quiesce heartbeat while n3 lags')
  t.notOk(net.core('n1').leaderState?.quiet.quiesced, 'the leader keeps heartbeating')
  net.recover()
  net.drop(m => { sent.push(m); return false })
  net.tick(three, 20)
  t.equal(net.core('n3').log.lastIndex(), net.core('n1').log.lastIndex(), 'n3 caught up')
  t.ok(allQuiet(net, three), 'then the group quiesces')
  t.end()
})

t.test('a quiesce heartbeat that was lost is sent again until it is answered', t => {
  const net = elected(three, { quiesceAfterTicks: QUIET })
  let lost = 0
  net.drop(m => m.type === 'Heartbeat' && m.quiesce && m.to === 'n3' && lost++ < 2)
  net.tick(three, 20)
  t.equal(lost, 3, 'two lost, the third delivered')
  t.ok(allQuiet(net, three), 'n3 quiesced too, so its timer will not run out')
  t.end()
})

t.test('a quiesced follower told its leader is unreachable wakes and the others elect a new leader', t => {
  const { net } = quiesced(three)
  net.isolate('n1')
  net.tick(['n2', 'n3'], 100)
  t.equal(net.core('n2').leader, 'n1', 'without the transport\'s report, quiesced followers wait for ever (the report is the liveness signal)')
  for (const id of ['n2', 'n3']) net.core(id).reportUnreachable('n1')
  t.notOk(net.core('n2').quiesced, 'the report wakes it')
  const leader = net.tickUntilLeader(['n2', 'n3'], ['n2', 'n3'], 40)
  t.ok(net.core(leader).term > 2, `${leader} leads a new term`)
  t.end()
})

t.test('a quiesced leader told a follower is unreachable wakes; cut off, check-quorum deposes it', t => {
  const { net, sent } = quiesced(three)
  net.isolate('n1')
  sent.length = 0
  net.core('n1').reportUnreachable('n2')
  net.stabilize()
  t.notOk(net.core('n1').leaderState?.quiet.quiesced, 'awake')
  t.ok(sent.some(m => m.type === 'Heartbeat' && !m.quiesce), 'heartbeats resume at once')
  net.tick('n1', 21)
  t.equal(net.core('n1').role, 'follower', 'check-quorum steps down within two election timeouts')
  t.end()
})

t.test('a leader does not quiesce again until the follower reported lost answers', t => {
  const { net } = quiesced(three)
  net.core('n1').reportUnreachable('n3')
  net.isolate('n3')
  net.tick(['n1', 'n2'], 30)
  t.notOk(net.core('n1').leaderState?.quiet.quiesced, 'still heartbeating towards n3')
  net.recover()
  net.tick(three, 10)
  t.ok(allQuiet(net, three), 'n3 answered: quiet again')
  t.end()
})

t.test('a follower that restarts campaigns; its pre-vote wakes the leader, and it follows without a new term', t => {
  const { net } = quiesced(three)
  net.restart('n3')
  t.notOk(net.core('n3').quiesced, 'a restarted follower is not quiesced')
  net.tick(three, 25)
  t.equal(net.core('n1').role, 'leader')
  t.equal(net.core('n1').term, 2, 'no new term: pre-vote was refused, the leader woke and n3 heard it')
  t.equal(net.core('n3').leader, 'n1')
  net.tick(three, 10)
  t.ok(allQuiet(net, three), 'quiet again')
  t.end()
})

t.test('without pre-vote, a leader deposed while quiesced first wakes the others, so five can elect again', t => {
  // n5 believes its leader lost (a false alarm) and campaigns in term 3.
  // Its Vote to n1 is lost; n1's next read round reaches n5, whose answer
  // carries term 3 and deposes n1. Had n1 not woken n2..n4 first, they
  // would still be quiesced, refusing every vote: two of five could never elect.
  const { net } = quiesced(five, { preVote: false })
  net.drop(m => m.type === 'Vote' && m.from === 'n5' && m.to === 'n1')
  net.core('n5').reportUnreachable('n1')
  net.tick('n5', 10)
  t.equal(net.core('n5').role, 'candidate')
  t.equal(net.core('n1').role, 'leader', 'n1 did not hear the vote request')
  net.core('n1').readIndex('r')
  net.stabilize()
  t.equal(net.core('n1').role, 'follower', 'the answer to the read round deposed n1')
  const leader = net.tickUntilLeader(five, five, 100)
  t.ok(net.core(leader).term >= 3, `${leader} was elected in term ${net.core(leader).term}`)
  t.end()
})

t.test('a quiesced follower that missed the wake-up votes for its old leader when that leader campaigns', t => {
  // n1 wakes for a proposal, but its heartbeats to n3 are lost and n2 is
  // down: check-quorum deposes it. n3, still quiesced, counts n1 as its
  // live leader; refusing n1's own campaign would leave nobody to elect.
  const { net } = quiesced(three)
  net.isolate('n2')
  net.drop(m => m.from === 'n1' && m.to === 'n3')
  net.core('n1').propose(bytes('x'))
  net.tick('n1', 25)
  t.equal(net.core('n1').role !== 'leader', true, 'check-quorum deposed n1')
  t.ok(net.core('n3').quiesced, 'n3 never heard the wake-up')
  net.recover()
  net.isolate('n2')
  let leader: NodeId | null = null
  try {
    leader = net.tickUntilLeader(['n1', 'n3'], ['n1', 'n3'], 60)
  } catch {}
  t.equal(leader, 'n1', 'n3 granted n1\'s vote')
  t.end()
})

t.test('ReadIndex while quiesced: a quorum round confirms it, and nobody wakes', t => {
  const { net, sent } = quiesced(three)
  sent.length = 0
  net.core('n1').readIndex('own')
  net.core('n2').readIndex('fwd')
  net.stabilize()
  const commit = net.core('n1').log.committed
  t.same(net.node('n1').readStates, [{ ctx: 'own', index: commit }], 'the leader\'s read is served')
  t.same(net.node('n2').readStates, [{ ctx: 'fwd', index: commit }], 'a follower\'s read is served')
  t.ok(sent.filter(m => m.type === 'Heartbeat').every(m => m.type === 'Heartbeat' && m.quiesce), 'the read rounds are marked')
  t.ok(allQuiet(net, three), 'everyone is still quiesced')
  sent.length = 0
  net.tick(three, 50)
  t.same(sent, [], 'and silent')
  t.end()
})

t.test('ReadIndex while quiesced and cut off is not served', t => {
  const { net } = quiesced(three)
  net.isolate('n1')
  net.core('n1').readIndex('r')
  net.stabilize()
  t.same(net.node('n1').readStates, [], 'no quorum answered: no read')
  t.end()
})

t.test('a proposal wakes the group; it quiesces again after the quiet period', t => {
  const { net, sent } = quiesced(three)
  net.core('n1').propose(bytes('x'))
  t.notOk(net.core('n1').leaderState?.quiet.quiesced, 'the leader wakes at once')
  net.stabilize()
  t.notOk(net.core('n2').quiesced || net.core('n3').quiesced, 'followers awake')
  sent.length = 0
  net.tick(three, QUIET - 1)
  t.ok(sent.some(m => m.type === 'Heartbeat' && !m.quiesce), 'heartbeats during the quiet period')
  net.tick(three, 5)
  t.ok(allQuiet(net, three), 'quiet again')
  t.end()
})

t.test('a late quiesce heartbeat does not quiesce a follower that has newer entries', t => {
  const net = elected(three, { quiesceAfterTicks: QUIET })
  const held: Message[] = []
  net.drop(m => {
    if (m.type === 'Heartbeat' && m.quiesce && m.to === 'n2' && held.length === 0) { held.push(m); return true }
    return false
  })
  net.tick(three, QUIET + 1)
  t.equal(held.length, 1, 'held back the quiesce heartbeat to n2')
  net.core('n1').propose(bytes('x'))
  net.stabilize()
  t.ok(net.core('n2').log.lastIndex() > (held[0].type === 'Heartbeat' ? held[0].commit : 0))
  net.send(held[0])
  net.stabilize()
  t.notOk(net.core('n2').quiesced, 'its log ends past that heartbeat\'s commit: the timer keeps running')
  t.end()
})

t.test('quiescence is refused together with lease reads', t => {
  t.throws(() => new RaftCore({ id: 'n1', random: Math.random, checkQuorum: true, leaseRead: true, quiesceAfterTicks: 5 }), InvalidArgumentError)
  t.throws(() => new RaftCore({ id: 'n1', random: Math.random, quiesceAfterTicks: -1 }), InvalidArgumentError)
  t.end()
})
