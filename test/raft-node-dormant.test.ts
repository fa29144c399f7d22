import t from 'tap'
import { RaftNode } from '../raft/driver/node.js'
import { systemClock, type Clock } from '../raft/driver/clock.js'
import { MemoryNetwork } from '../raft/driver/transport.js'
import { MemoryLogStore } from '../raft/storage/log-store.js'
import { encodeKv, type KvResult } from '../sim/kv-machine.js'
import { KvStateMachine } from './helpers/kv-state-machine.js'

/** The process's timers, counting the intervals that run and the interval callbacks that fire. */
class CountingClock implements Clock {
  running = 0
  fired = 0
  now (): number { return systemClock.now() }
  setTimeout (fn: () => void, ms: number): unknown { return systemClock.setTimeout(fn, ms) }
  clearTimeout (timer: unknown): void { systemClock.clearTimeout(timer) }
  setInterval (fn: () => void, ms: number): unknown {
    this.running++
    return systemClock.setInterval(() => { this.fired++; fn() }, ms)
  }

  clearInterval (timer: unknown): void {
    this.running--
    systemClock.clearInterval(timer)
  }
}

interface Member { id: string, node: RaftNode<KvResult | null>, clock: CountingClock }

const ids = ['a', 'b', 'c']
let opSeq = 0
const put = (key: string): Uint8Array => encodeKv({ client: 1, opId: ++opSeq, cmd: { op: 'put', key, value: 'v' } })

async function until (what: string, cond: () => boolean, ms = 10000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('a quiesced group stops its tick timers and wakes on a proposal, a read and a lost leader', async t => {
  const net = new MemoryNetwork()
  const members: Member[] = []
  for (const id of ids) {
    const clock = new CountingClock()
    const node = await RaftNode.start({
      id, store: new MemoryLogStore(), transport: net.join(id), stateMachine: new KvStateMachine(),
      bootstrap: ids, tickMs: 10, electionTick: 10, quiesceAfterTicks: 3, clock
    })
    members.push({ id, node, clock })
  }
  t.teardown(async () => { for (const m of members) await m.node.stop() })
  const leader = (): Member | undefined => members.find(m => m.node.isLeader)
  const dormant = (ms: Member[]): boolean => ms.every(m => m.clock.running === 0)

  await until('a leader', () => leader() !== undefined)
  await (leader() as Member).node.propose(put('k1'))
  await until('every tick timer stopped', () => dormant(members))
  const fired = members.map(m => m.clock.fired)
  await sleep(200)
  t.same(members.map(m => m.clock.fired), fired, 'no tick fires while the group is quiesced (20 ticks would have)')

  const first = leader() as Member
  await first.node.propose(put('k2'))
  t.pass('a proposal to the dormant leader commits')
  await until('quiesced again', () => dormant(members))

  const follower = members.find(m => m !== first) as Member
  const index = await follower.node.readBarrier({ timeoutMs: 2000 })
  t.ok(index >= 2, 'a read on a dormant follower is answered')
  await until('quiesced after the read', () => dormant(members))

  // The leader goes away while everyone sleeps; only the transport's report can wake the others.
  await first.node.stop()
  const rest = members.filter(m => m !== first)
  for (const m of rest) m.node.reportUnreachable(first.id)
  await until('a new leader among the rest', () => rest.some(m => m.node.isLeader))
  const next = rest.find(m => m.node.isLeader) as Member
  await next.node.propose(put('k3'))
  t.pass('the new leader commits')
  t.equal(first.clock.running, 0, 'a stopped node leaves no timer behind')
})
