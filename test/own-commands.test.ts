/**
 * The leader's housekeeping check runs only while this node leads, when
 * its work falls due, soon after an apply, and at least every maxWaitMs:
 * an idle follower has no housekeeping timer at all (a fixed poll woke every
 * process 60 times a second). Driven through a stand-in for the two things
 * OwnCommands reads from RaftNode (its `state` and `applied` events and
 * `isLeader`), with real timers: the assertions count runs, with margins of
 * seconds against waits of a few hundred milliseconds.
 */
import { EventEmitter } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { silentLogger } from '../gossip/logger.js'
import type { RaftNode } from '../raft/index.js'
import type { CommandResult } from '../lib/coordination/commands.js'
import { OwnCommands } from '../lib/own-commands.js'
import type { Proposer } from '../lib/proposer.js'

class StandInRaft extends EventEmitter {
  isLeader = false

  become (role: 'leader' | 'follower'): void {
    this.isLeader = role === 'leader'
    this.emit('state', { role, term: 1, leader: role === 'leader' ? 'n1' : 'n2' })
  }
}

function setup (next: () => number, o: { minGapMs?: number, maxWaitMs?: number } = {}): { raft: StandInRaft, runs: () => number, own: OwnCommands } {
  const raft = new StandInRaft()
  let runs = 0
  const proposer = { own: async () => 1 } as unknown as Proposer
  const own = new OwnCommands({ raft: raft as unknown as RaftNode<CommandResult>, proposer, log: silentLogger, minGapMs: o.minGapMs ?? 10, maxWaitMs: o.maxWaitMs ?? 10_000 }, () => { runs++; return next() })
  return { raft, runs: () => runs, own }
}

t.test('a follower never runs the check', async t => {
  const { runs, own } = setup(() => 0, { minGapMs: 1, maxWaitMs: 5 })
  await sleep(300)
  t.equal(runs(), 0)
  own.close()
})

t.test('a new leader checks at once, then when the check says its work falls due', async t => {
  let answer = Infinity
  const { raft, runs, own } = setup(() => answer)
  raft.become('leader')
  await sleep(100)
  t.equal(runs(), 1, 'one run on taking office; nothing due, so none until maxWaitMs (10 s)')
  answer = 50
  raft.emit('applied', 1)
  await sleep(30)
  t.equal(runs(), 2, 'an apply runs it again once the gap allows')
  answer = Infinity
  await sleep(300)
  t.equal(runs(), 3, 'and it ran when its work fell due, then rests')
  own.close()
})

t.test('runs are never closer than minGapMs, however often entries apply', async t => {
  const { raft, runs, own } = setup(() => Infinity, { minGapMs: 5000 })
  raft.become('leader')
  for (let i = 0; i < 20; i++) {
    raft.emit('applied', i)
    await sleep(10)
  }
  t.equal(runs(), 1, 'only the run on taking office within the first 5 s')
  own.close()
})

t.test('losing leadership stops the check, and closing removes the listeners', async t => {
  const { raft, runs, own } = setup(() => 20, { minGapMs: 1 })
  raft.become('leader')
  await sleep(100)
  const led = runs()
  t.ok(led >= 2, `it ran while leading (${led} runs)`)
  raft.become('follower')
  raft.emit('applied', 2)
  await sleep(200)
  t.equal(runs(), led, 'no run as a follower')
  own.close()
  t.equal(raft.listenerCount('state') + raft.listenerCount('applied'), 0)
})

t.test('a proposal that settles runs the check again (its work is done or must be found again)', async t => {
  let proposeOnce = true
  const raft = new StandInRaft()
  let runs = 0
  const proposer = { own: async () => { throw new Error('not committed') } } as unknown as Proposer
  const own: OwnCommands = new OwnCommands({ raft: raft as unknown as RaftNode<CommandResult>, proposer, log: silentLogger, minGapMs: 10, maxWaitMs: 10_000 }, () => {
    runs++
    if (proposeOnce) {
      proposeOnce = false
      own.propose('k', { op: 'q-wake', queue: 'q' })
    }
    return Infinity
  })
  raft.become('leader')
  await sleep(200)
  t.equal(runs, 2, 'the failed proposal brought one more run')
  t.notOk(own.has('k'))
  own.close()
})
