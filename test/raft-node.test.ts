import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { LeadershipLostError, NotLeaderError, StoppedError } from '../raft/errors.js'
import { RaftNode } from '../raft/driver/node.js'
import { encodeKv, type KvResult } from '../sim/kv-machine.js'
import type { Message } from '../raft/core/messages.js'
import { MemoryLogStore } from '../raft/storage/log-store.js'
import type { Logger } from '../raft/logger.js'
import { MemoryNetwork } from '../raft/driver/transport.js'
import { FileLogStore } from '../raft/storage/wal.js'
import { KvStateMachine } from './helpers/kv-state-machine.js'

const ids = ['a', 'b', 'c']
let opSeq = 0
const put = (key: string, value: string): Uint8Array => encodeKv({ client: 1, opId: ++opSeq, cmd: { op: 'put', key, value } })

interface Member { node: RaftNode<KvResult | null>, sm: KvStateMachine, dir: string }

async function startMember (net: MemoryNetwork, id: string, dir: string, snapshotEvery = 10000): Promise<Member> {
  const sm = new KvStateMachine()
  const node = await RaftNode.start({
    id, store: new FileLogStore({ dir, segmentBytes: 16 * 1024 }), transport: net.join(id), stateMachine: sm,
    bootstrap: ids, tickMs: 10, electionTick: 10, snapshotEvery, snapshotChunkBytes: 512
  })
  return { node, sm, dir }
}

async function until (what: string, cond: () => boolean, ms = 10000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

function leaderOf (members: Member[]): Member | undefined {
  return members.find(m => m.node.isLeader)
}

/** Proposes to the current leader, again to the next one if leadership moved before the entry committed. */
async function proposeToLeader (members: Member[], data: Uint8Array): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    await until('a leader', () => leaderOf(members) !== undefined)
    try {
      await (leaderOf(members) as Member).node.propose(data)
      return
    } catch (err) {
      if (attempt >= 20 || !(err instanceof NotLeaderError || err instanceof LeadershipLostError)) throw err
    }
  }
}

t.test('a 3-node cluster on real storage elects, replicates, restarts and catches up by snapshot', async t => {
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-node-'))
  t.teardown(async () => { await rm(root, { recursive: true, force: true }) })
  const net = new MemoryNetwork()
  const members: Member[] = []
  for (const id of ids) members.push(await startMember(net, id, join(root, id), 50))
  t.teardown(async () => { for (const m of members) await m.node.stop() })

  await until('a leader', () => leaderOf(members) !== undefined)
  const leader = leaderOf(members) as Member
  const follower = members.find(m => m !== leader) as Member

  await t.rejects(follower.node.propose(put('k', 'v')), NotLeaderError, 'a follower refuses proposals')
  const { index, result } = await leader.node.propose(put('k', 'v1'))
  t.ok(index > 3, 'the entry follows the bootstrap config and the no-op')
  t.same(result, { ok: true, value: null }, 'the proposer gets the state machine result')
  await until('every node applied it', () => members.every(m => m.sm.kv.get('k') === 'v1'))

  const read = await follower.node.readBarrier()
  t.ok(read >= index, 'a follower read barrier covers the committed write')

  // Restart one follower from its files: it keeps its log and rejoins.
  const restartIdx = members.indexOf(follower)
  await follower.node.stop()
  const restarted = await startMember(net, follower.node.id, follower.dir, 50)
  members[restartIdx] = restarted
  await until('restarted node catches up', () => restarted.sm.kv.get('k') === 'v1')

  // Stop a follower, write enough to compact the leader's log past it, then bring it back.
  const current = leaderOf(members) ?? leader
  const laggard = members.find(m => m !== current) as Member
  const lagIdx = members.indexOf(laggard)
  await laggard.node.stop()
  // On a loaded machine a 100 ms election timeout can move leadership meanwhile: each write goes to whoever leads.
  for (let i = 0; i < 200; i++) await proposeToLeader(members.filter(m => m !== laggard), put(`key${i % 7}`, `value${i}`))
  const now = leaderOf(members.filter(m => m !== laggard)) ?? current
  t.ok(now.node.status().snapshotIndex > laggard.sm.applied, 'the leader compacted past the stopped follower')
  const back = await startMember(net, laggard.node.id, laggard.dir, 50)
  members[lagIdx] = back
  await until('laggard restored by snapshot', () => back.sm.kv.get('key3') === now.sm.kv.get('key3') && back.node.status().appliedIndex >= now.node.status().commitIndex - 5)
  t.ok(back.node.status().snapshotIndex > 0, 'the laggard installed a snapshot')
  const files = await readdir(laggard.dir)
  t.ok(files.some(f => f.startsWith('snap-')), 'the snapshot was saved to disk')
})

t.test('a leader that loses its majority fails pending reads and a stopped node refuses work', async t => {
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-node-'))
  t.teardown(async () => { await rm(root, { recursive: true, force: true }) })
  const net = new MemoryNetwork()
  const members: Member[] = []
  for (const id of ids) members.push(await startMember(net, id, join(root, id)))
  t.teardown(async () => { for (const m of members) await m.node.stop() })
  await until('a leader', () => leaderOf(members) !== undefined)
  const leader = leaderOf(members) as Member
  net.isolate(leader.node.id)
  await t.rejects(leader.node.readBarrier({ timeoutMs: 2000 }), 'an isolated leader cannot confirm a read')
  net.heal()
  await until('a leader again', () => leaderOf(members) !== undefined)
  await leader.node.stop()
  await t.rejects(leader.node.propose(put('x', 'y')), StoppedError)

  // A read request lost in transit is asked again, well before the caller's timeout.
  const alive = members.filter(m => m !== leader)
  await until('a leader among the rest', () => leaderOf(alive) !== undefined)
  const reader = alive.find(m => !m.node.isLeader) as Member
  // A follower that has not yet heard from the new leader refuses the read at once (NotLeaderError).
  await until('the reader knows the leader', () => reader.node.leader !== null)
  net.dropRate = 1
  const lost = reader.node.readBarrier({ timeoutMs: 5000 })
  await new Promise(resolve => setTimeout(resolve, 30))
  net.dropRate = 0
  t.ok(await lost >= 0, 'the read completed after its first request was dropped')
  const ac = new AbortController()
  ac.abort(new Error('caller gave up'))
  const live = members.find(m => m !== leader) as Member
  await t.rejects(live.node.readBarrier({ signal: ac.signal }), /caller gave up/)
})

t.test('a commit notice leaves at once when nothing more is in flight, and is dropped when the next Append carries the commit', async t => {
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-node-'))
  t.teardown(async () => { await rm(root, { recursive: true, force: true }) })
  const net = new MemoryNetwork()
  const events: string[] = []
  const members: Member[] = []
  for (const id of ids) {
    const sm = new KvStateMachine()
    const inner = net.join(id)
    const transport = { ...inner, send: (ms: readonly Message[]) => { for (const m of ms) if (m.type === 'Commit') events.push(`notice ${m.from}->${m.to} ${m.commit}`); inner.send(ms) } }
    const node = await RaftNode.start({ id, store: new FileLogStore({ dir: join(root, id) }), transport, stateMachine: sm, bootstrap: ids, tickMs: 10, electionTick: 100, heartbeatTick: 50 })
    members.push({ node, sm, dir: join(root, id) })
  }
  t.teardown(async () => { for (const m of members) await m.node.stop() })
  await until('a leader', () => leaderOf(members) !== undefined)
  const leader = leaderOf(members) as Member
  await leader.node.propose(put('warm', 'up'))
  await until('all applied the warm-up', () => members.every(m => m.sm.kv.get('warm') === 'up'))
  events.length = 0

  const { index } = await leader.node.propose(put('one', '1'))
  await until('both followers applied it', () => members.every(m => m.sm.kv.get('one') === '1'))
  t.equal(events.filter(e => e.startsWith('notice ') && e.endsWith(` ${index}`)).length, 2, 'each idle follower learns the commit from a notice')

  events.length = 0
  const n = 30
  const writes: Array<Promise<unknown>> = []
  for (let i = 0; i < n; i++) {
    writes.push(leader.node.propose(put(`k${i}`, 'v')))
    await new Promise(resolve => setImmediate(resolve))
  }
  await Promise.all(writes)
  await until('both followers applied every write', () => members.every(m => m.sm.kv.get(`k${n - 1}`) === 'v'))
  const notices = events.filter(e => e.startsWith('notice ')).length
  t.ok(notices < n / 2, `overlapping writes carry the commit in the next Append (${notices} notices for ${n} writes)`)
})

t.test('a node keeps time only through its injected clock, and draws election jitter from its injected random', async t => {
  const intervals: Array<() => void> = []
  const clock = {
    now: () => 0,
    setTimeout: () => 0,
    clearTimeout: () => {},
    setInterval: (fn: () => void) => { intervals.push(fn); return intervals.length },
    clearInterval: () => {}
  }
  let draws = 0
  const node = await RaftNode.start({
    id: 'solo', store: new MemoryLogStore(), transport: new MemoryNetwork().join('solo'), stateMachine: new KvStateMachine(),
    bootstrap: ['solo'], electionTick: 5, clock, random: () => { draws++; return 0 }
  })
  t.teardown(async () => { await node.stop() })
  t.equal(intervals.length, 1, 'the tick timer is the injected clock\'s')
  t.ok(draws > 0, 'the election timeout was drawn from the injected random')
  await new Promise(resolve => setTimeout(resolve, 50))
  t.notOk(node.isLeader, 'no tick without the injected clock')
  // random() = 0 makes the timeout exactly electionTick ticks.
  for (let i = 0; i < 5; i++) intervals[0]()
  await until('leadership', () => node.isLeader)
  t.pass('elected after electionTick injected ticks')
})

/** A store whose saves fail once `failing` is set, as a disk that went away. */
class FailingStore extends MemoryLogStore {
  failing = false
  override async save (...args: Parameters<MemoryLogStore['save']>): Promise<void> {
    if (this.failing) throw new Error('EIO: disk gone')
    await super.save(...args)
  }
}

t.test('a storage failure stops the node first, then reports it, and logs it with the node id', async t => {
  for (const listening of [true, false]) {
    const store = new FailingStore()
    const lines: LogLine[] = []
    const logger = recordingLogger(lines, {})
    const node = await RaftNode.start({ id: 'solo', store, transport: new MemoryNetwork().join('solo'), stateMachine: new KvStateMachine(), bootstrap: ['solo'], tickMs: 5, electionTick: 2, heartbeatTick: 1, logger })
    await until('leadership', () => node.isLeader)
    let stoppedWhenReported: boolean | null = null
    if (listening) node.on('error', () => { stoppedWhenReported = isStopped(node) })
    store.failing = true
    await t.rejects(node.propose(put('k', 'v'), { timeoutMs: 5000 }), { name: 'StoppedError' })
    await until('the failure logged', () => lines.some(l => l.level === 'error'))
    const logged = lines.find(l => l.level === 'error')
    t.equal(logged?.obj.node, 'solo', 'the log line carries the node id')
    t.match(String(logged?.obj.err), /EIO/, 'and the error')
    if (listening) {
      await until('the report', () => stoppedWhenReported !== null)
      t.equal(stoppedWhenReported, true, 'the node had stopped when the error was reported')
    } else {
      t.pass('no listener, no throw')
    }
  }
})

interface LogLine { level: string, obj: Record<string, unknown>, msg: string }

/** A pino-shaped logger that records its lines, bindings included. */
function recordingLogger (lines: LogLine[], bindings: Record<string, unknown>): Logger {
  const at = (level: string) => (obj: Record<string, unknown>, msg: string): void => { lines.push({ level, obj: { ...bindings, ...obj }, msg }) }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: more => recordingLogger(lines, { ...bindings, ...more }) }
}

function isStopped (node: { campaign: () => void }): boolean {
  try {
    node.campaign()
    return false
  } catch (err) {
    return (err as Error).name === 'StoppedError'
  }
}

t.test('a large state is snapshotted once the log since the last snapshot holds as many bytes (snapshotLogRatio)', async t => {
  // A state machine whose snapshot is 4 KiB whatever it holds, under 100-byte entries.
  const snapshots = async (snapshotLogRatio: number | undefined): Promise<number[]> => {
    const taken: number[] = []
    const sm = { apply: () => null, snapshot: () => new Uint8Array(4096), restore: () => {} }
    const store = new MemoryLogStore()
    const save = store.saveSnapshot.bind(store)
    store.saveSnapshot = async snap => { taken.push(snap.meta.index); await save(snap) }
    const node = await RaftNode.start({ id: 'solo', store, transport: new MemoryNetwork().join('solo'), stateMachine: sm, bootstrap: ['solo'], tickMs: 10, electionTick: 10, snapshotEvery: 10, snapshotLogRatio })
    try {
      await until('leadership', () => node.isLeader)
      for (let i = 0; i < 120; i++) await node.propose(new Uint8Array(100))
    } finally {
      await node.stop()
    }
    return taken
  }
  const byCount = await snapshots(0)
  t.ok(byCount.length >= 11, `by count alone: every 10 entries (${byCount.join(', ')})`)
  const byBytes = await snapshots(undefined)
  // The first at 10 entries (nothing taken before), the next once 4 KiB more of entries (41 of 100 bytes) were applied.
  t.equal(byBytes.length, 3, `by bytes too, default ratio 1 (${byBytes.join(', ')})`)
  t.ok(byBytes[1] - byBytes[0] >= 41, 'the second waits for 4 KiB of entries')
  const half = await snapshots(0.5)
  t.ok(half.length > byBytes.length && half.length < byCount.length, `ratio 0.5 in between (${half.join(', ')})`)
  await t.rejects(RaftNode.start({ id: 'x', store: new MemoryLogStore(), transport: new MemoryNetwork().join('x'), stateMachine: { apply: () => null, snapshot: () => new Uint8Array(0), restore: () => {} }, snapshotLogRatio: -1 }), /snapshotLogRatio/)
})
