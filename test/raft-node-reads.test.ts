/**
 * A follower's ReadIndex requests across its own restart. The leader may
 * answer a request after the follower crashed and came back: that answer
 * must not satisfy a read the new incarnation asks, which would return the
 * state machine as of an index older than writes acknowledged before the
 * read began (found by simulation seed 924: a stale read after a restart).
 * The leader here is played by hand; time stands still (no ticks).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { Clock } from '../raft/driver/clock.js'
import { RaftNode } from '../raft/driver/node.js'
import type { Transport } from '../raft/driver/transport.js'
import type { Message } from '../raft/core/messages.js'
import { FileLogStore } from '../raft/storage/wal.js'
import { KvStateMachine } from './helpers/kv-state-machine.js'
import type { KvResult } from '../sim/kv-machine.js'

const stoppedClock: Clock = { now: () => 0, setTimeout: () => ({}), clearTimeout: () => {}, setInterval: () => ({}), clearInterval: () => {} }

/** A transport whose outgoing messages the test reads and whose incoming ones it writes. */
function handTransport (): { transport: Transport, sent: Message[], deliver: (m: Message) => void } {
  let handler: ((m: Message) => void) | null = null
  const sent: Message[] = []
  return {
    sent,
    deliver: m => { handler?.(m) },
    transport: { send: ms => { sent.push(...ms) }, onMessage: h => { handler = h }, close: async () => { handler = null } }
  }
}

/** Lets file I/O and the driver's loop run for a moment (storage is real). */
const settle = async (): Promise<void> => { await new Promise(resolve => setTimeout(resolve, 50)) }

t.test('an answer to a read asked before a restart does not answer a read asked after it', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-reads-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const start = async (): Promise<{ node: RaftNode<KvResult | null>, hand: ReturnType<typeof handTransport> }> => {
    const hand = handTransport()
    const node = await RaftNode.start({ id: 'b', store: new FileLogStore({ dir }), transport: hand.transport, stateMachine: new KvStateMachine(), bootstrap: ['a', 'b', 'c'], clock: stoppedClock })
    // The leader of term 2 makes itself known.
    hand.deliver({ type: 'Heartbeat', from: 'a', to: 'b', term: 2, commit: 0, readSeq: 0, quiesce: false })
    await settle()
    return { node, hand }
  }
  const askedCtx = (sent: Message[]): string => {
    const ask = sent.find(m => m.type === 'ReadIndex')
    if (ask?.type !== 'ReadIndex') throw new Error(`no ReadIndex sent: ${JSON.stringify(sent)}`)
    return ask.ctx
  }

  const before = await start()
  void before.node.readBarrier({ timeoutMs: 60_000 }).catch(() => {})
  await settle()
  const oldCtx = askedCtx(before.hand.sent)
  await before.node.stop()

  const after = await start()
  let answered: number | null = null
  void after.node.readBarrier({ timeoutMs: 60_000 }).then(i => { answered = i }, () => {})
  await settle()
  const newCtx = askedCtx(after.hand.sent)
  t.teardown(async () => { await after.node.stop() })

  after.hand.deliver({ type: 'ReadIndexResp', from: 'a', to: 'b', term: 2, ctx: oldCtx, index: 0 })
  await settle()
  t.equal(answered, null, `the late answer to the first incarnation's ${oldCtx} does not answer ${newCtx}`)
  after.hand.deliver({ type: 'ReadIndexResp', from: 'a', to: 'b', term: 2, ctx: newCtx, index: 0 })
  await settle()
  t.equal(answered, 0, 'its own answer does')
})
