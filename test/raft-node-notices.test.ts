/**
 * When the leader's driver tells followers a new commit index. Time here
 * moves only when the test says (an injected clock whose timers never fire
 * on their own), so a follower that learns a commit did so from a message
 * sent at once, not from a held notice's timer or a heartbeat.
 */
import t from 'tap'
import type { Clock } from '../raft/driver/clock.js'
import { RaftNode } from '../raft/driver/node.js'
import { MemoryNetwork } from '../raft/driver/transport.js'
import { MemoryLogStore } from '../raft/storage/log-store.js'
import { encodeKv, type KvResult } from '../sim/kv-machine.js'
import { KvStateMachine } from './helpers/kv-state-machine.js'

const ids = ['a', 'b', 'c']
let opSeq = 0
const put = (key: string, value: string): Uint8Array => encodeKv({ client: 1, opId: ++opSeq, cmd: { op: 'put', key, value } })

/** Timers are kept but never run: no tick, no held-notice deadline. */
const stoppedClock: Clock = {
  now: () => 0,
  setTimeout: () => ({}),
  clearTimeout: () => {},
  setInterval: () => ({}),
  clearInterval: () => {}
}

async function until (what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

t.test('with nothing more in flight, every follower learns a commit at once (no Append is coming to carry it)', async t => {
  const net = new MemoryNetwork()
  const members = await Promise.all(ids.map(async id => {
    const sm = new KvStateMachine()
    const node = await RaftNode.start<KvResult | null>({ id, store: new MemoryLogStore(), transport: net.join(id), stateMachine: sm, bootstrap: ids, clock: stoppedClock })
    return { node, sm }
  }))
  t.teardown(async () => { for (const m of members) await m.node.stop() })
  members[0].node.campaign()
  await until('a leads', () => members[0].node.isLeader && members.every(m => m.node.leader === 'a'))
  for (let i = 1; i <= 3; i++) {
    const { index } = await members[0].node.propose(put('k', `v${i}`))
    await until(`both followers applied entry ${index}`, () => members.every(m => m.node.status().appliedIndex >= index))
    t.same(members.map(m => m.sm.kv.get('k')), [`v${i}`, `v${i}`, `v${i}`], `write ${i} applied on every node`)
  }
})
