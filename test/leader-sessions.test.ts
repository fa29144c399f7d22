/**
 * The leader's side of session keep-alives (lib/leader-sessions.ts): the
 * keep-alives that arrive together share one leadership round, and that
 * round starts only after the last of them arrived (it must confirm the
 * leadership at each one's arrival). A fake Raft node counts the rounds.
 */
import { EventEmitter } from 'node:events'
import t from 'tap'
import { silentLogger } from '../gossip/logger.js'
import type { CommandResult } from '../lib/coordination/commands.js'
import type { CoordinationState } from '../lib/coordination/state.js'
import { LeaderSessions } from '../lib/leader-sessions.js'
import type { Proposer } from '../lib/proposer.js'
import type { RaftNode } from '../raft/index.js'

class FakeRaft extends EventEmitter {
  readonly isLeader = true
  readonly leader = 'n1'
  /** When each round started. */
  readonly rounds: number[] = []
  status (): { role: 'leader', term: number, leader: string } {
    return { role: 'leader', term: 3, leader: 'n1' }
  }

  private finish: Array<() => void> = []
  async readBarrier (): Promise<number> {
    this.rounds.push(performance.now())
    await new Promise<void>(resolve => { this.finish.push(resolve) })
    return 1
  }

  /** Ends the rounds started so far. */
  release (): void {
    for (const f of this.finish.splice(0)) f()
  }
}

class FakeState extends EventEmitter {
  session (id: string): object | undefined {
    return id.startsWith('n') ? {} : undefined
  }

  sessionList (): [] {
    return []
  }
}

t.test('keep-alives that arrive together share one round, started after the last of them', async t => {
  const raft = new FakeRaft()
  const sessions = new LeaderSessions({
    raft: raft as unknown as RaftNode<CommandResult>,
    state: new FakeState() as unknown as CoordinationState,
    proposer: {} as unknown as Proposer,
    clock: { monotonic: () => performance.now(), wall: () => Date.now() },
    log: silentLogger,
    checkEveryMs: 1000
  })
  t.teardown(() => { sessions.close() })
  const first = sessions.keepAlive('n1/a', { timeoutMs: 1000 })
  await new Promise(resolve => setTimeout(resolve, 5))
  const second = sessions.keepAlive('n2/b', { timeoutMs: 1000 })
  const thirdAt = performance.now()
  const third = sessions.keepAlive('n3/c', { timeoutMs: 1000 })
  while (raft.rounds.length === 0) await new Promise(resolve => setTimeout(resolve, 1))
  t.ok(raft.rounds[0] >= thirdAt, 'the round started after the last keep-alive arrived')
  let lateDone = false
  const late = sessions.keepAlive('n2/b', { timeoutMs: 1000 }).then(() => { lateDone = true })
  raft.release()
  await Promise.all([first, second, third])
  t.equal(raft.rounds.length, 1, 'three keep-alives, one round')
  await new Promise(resolve => setTimeout(resolve, 5))
  t.notOk(lateDone, 'one that arrived while the round was under way is not answered by it')
  while (raft.rounds.length < 2) await new Promise(resolve => setTimeout(resolve, 1))
  raft.release()
  await late
  t.equal(raft.rounds.length, 2, 'it got a round of its own')
  const gone = sessions.keepAlive('gone', { timeoutMs: 1000 })
  while (raft.rounds.length < 3) await new Promise(resolve => setTimeout(resolve, 1))
  raft.release()
  await t.rejects(gone, { name: 'SessionLostError' })
})
