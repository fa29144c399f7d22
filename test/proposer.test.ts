/**
 * What a follower's Proposer puts in each envelope it forwards: `lo`, the
 * lowest sequence number its client still waits on, which lets the state
 * machine forget the answers below it. Too high, and a re-sent older call
 * would run twice; so it must track the client's oldest pending call as
 * calls of several clients start and end in any order. Driven through
 * stand-ins for the leader (it records what is forwarded, never answers)
 * and for the applied answers.
 */
import { EventEmitter } from 'node:events'
import t from 'tap'
import { silentLogger } from '../gossip/logger.js'
import type { RaftNode } from '../raft/index.js'
import { decodeEnvelope, type CommandResult } from '../lib/coordination/commands.js'
import type { CoordinationState } from '../lib/coordination/state.js'
import type { MeshCalls } from '../lib/mesh-calls.js'
import { Proposer } from '../lib/proposer.js'

t.test('lo is the lowest sequence number of the client\'s calls still waiting', async t => {
  const raft = Object.assign(new EventEmitter(), { leader: 'n2', isLeader: false })
  const state = Object.assign(new EventEmitter(), { now: 0 })
  const sent: Array<{ c: string, s: number, lo: number }> = []
  const calls = {
    handle: () => {},
    call: async (_to: string, _method: string, body: Uint8Array) => {
      const env = decodeEnvelope(body)
      sent.push({ c: env.c, s: env.s, lo: env.lo })
      return await new Promise<Uint8Array>(() => {})
    }
  }
  const proposer = new Proposer({
    nodeId: 'n1',
    raft: raft as unknown as RaftNode<CommandResult>,
    calls: calls as unknown as MeshCalls,
    state: state as unknown as CoordinationState,
    clock: { wall: () => 0, monotonic: () => 0 } as never,
    log: silentLogger
  })
  const cmd = { op: 'release', kind: 'lock', name: 'x', owner: 'o' } as const
  const answer = (client: string, seq: number): void => { state.emit('answer', { client, seq, index: seq, result: { ok: true, value: null } }) }
  const waiting = [
    proposer.submit('a', cmd), // 1
    proposer.submit('b', cmd), // 2
    proposer.submit('a', cmd), // 3
    proposer.submit('a', cmd), // 4: a waits on 1, 3
    proposer.submit('b', cmd) // 5
  ]
  answer('a', 1)
  answer('b', 5)
  waiting.push(
    proposer.submit('a', cmd), // 6: a waits on 3, 4
    proposer.submit('b', cmd) // 7: b still waits on 2
  )
  answer('b', 2)
  answer('a', 4)
  waiting.push(
    proposer.submit('a', cmd), // 8: a waits on 3, 6
    proposer.submit('b', cmd), // 9: b waits on 7
    proposer.submit('c', cmd) // 10: c's first
  )
  t.same(sent, [
    { c: 'a', s: 1, lo: 1 },
    { c: 'b', s: 2, lo: 2 },
    { c: 'a', s: 3, lo: 1 },
    { c: 'a', s: 4, lo: 1 },
    { c: 'b', s: 5, lo: 2 },
    { c: 'a', s: 6, lo: 3 },
    { c: 'b', s: 7, lo: 2 },
    { c: 'a', s: 8, lo: 3 },
    { c: 'b', s: 9, lo: 7 },
    { c: 'c', s: 10, lo: 10 }
  ])
  proposer.close()
  await Promise.allSettled(waiting)
})
