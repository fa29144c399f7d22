/**
 * RaftNode clusters over Libp2pRaftTransport on real libp2p (127.0.0.1):
 * election and replication with 3 and 5 voters, a restart from the WAL
 * with the same peer key, a partition through the fault layer, and a
 * fuzzed stream of hostile frames that must neither crash the receiver nor
 * touch its Raft state.
 */
import { lengthPrefixed, uvarint } from '../gossip/length-prefix.js'
import fc from 'fast-check'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { FaultInjector } from '../gossip/fault.js'
import { createMeshNode, type MeshNode } from '../gossip/node.js'
import { encodeRaftMessage } from '../gossip/raft-codec.js'
import { Libp2pRaftTransport, RAFT_PROTOCOL } from '../gossip/raft-transport.js'
import { MemoryLogStore, type LogStore } from '../raft/storage/log-store.js'
import type { Message } from '../raft/core/messages.js'
import { RaftNode } from '../raft/driver/node.js'
import { encodeKv, type KvResult } from '../sim/kv-machine.js'
import { FileLogStore } from '../raft/storage/wal.js'
import { KvStateMachine } from './helpers/kv-state-machine.js'

const SECRET = 'a cluster secret of some length'
// Election timeout 10 x 25 ms: long enough that a busy test process does not
// see spurious elections, short enough to keep the suite quick.
const TICK_MS = 25
const ELECTION_TICK = 10

let opSeq = 0
const put = (key: string, value: string): Uint8Array => encodeKv({ client: 1, opId: ++opSeq, cmd: { op: 'put', key, value } })

async function until (what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

interface Peer {
  readonly id: string
  readonly dataDir: string
  mesh: MeshNode
  transport: Libp2pRaftTransport
  raft: RaftNode<KvResult | null>
  sm: KvStateMachine
}

class Cluster {
  readonly peers: Peer[] = []
  readonly faults = new FaultInjector([])
  constructor (readonly root: string, readonly ids: readonly string[], readonly store: (dir: string) => LogStore, readonly snapshotEvery?: number) {}

  async startPeer (id: string): Promise<Peer> {
    const dataDir = join(this.root, id)
    const running = this.peers.filter(p => p.id !== id)
    const mesh = await createMeshNode({
      nodeId: id, clusterName: 'raft-test', appVersion: '1', secret: SECRET, dataDir,
      // One bootstrap peer is enough: members exchange peer lists.
      bootstrap: running.slice(0, 1).map(p => p.mesh.multiaddrs[0])
    })
    this.faults.add(mesh)
    const transport = await Libp2pRaftTransport.create(mesh)
    this.faults.attach(transport)
    const sm = new KvStateMachine()
    const raft = await RaftNode.start({ id, store: this.store(join(dataDir, 'raft')), transport, stateMachine: sm, bootstrap: this.ids, tickMs: TICK_MS, electionTick: ELECTION_TICK, snapshotEvery: this.snapshotEvery, snapshotChunkBytes: 1024 })
    const peer = { id, dataDir, mesh, transport, raft, sm }
    const i = this.peers.findIndex(p => p.id === id)
    if (i >= 0) this.peers[i] = peer
    else this.peers.push(peer)
    return peer
  }

  async start (): Promise<void> {
    for (const id of this.ids) await this.startPeer(id)
    await until('a full mesh', () => this.peers.every(p => p.mesh.members().length === this.ids.length - 1))
  }

  async stopPeer (p: Peer): Promise<void> {
    await p.raft.stop()
    await p.mesh.stop()
  }

  async stop (): Promise<void> {
    for (const p of this.peers) await this.stopPeer(p)
  }

  leaders (among: readonly Peer[] = this.peers): Peer[] {
    return among.filter(p => p.raft.isLeader)
  }

  async leader (among: readonly Peer[] = this.peers): Promise<Peer> {
    await until('one leader', () => this.leaders(among).length === 1)
    return this.leaders(among)[0]
  }
}

async function cluster (t: Test, ids: string[], store: (dir: string) => LogStore = () => new MemoryLogStore(), snapshotEvery?: number): Promise<Cluster> {
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-transport-'))
  const c = new Cluster(root, ids, store, snapshotEvery)
  t.teardown(async () => {
    await c.stop()
    await rm(root, { recursive: true, force: true })
  })
  await c.start()
  return c
}

t.test('a 3-node cluster elects a leader and replicates over libp2p', async t => {
  const c = await cluster(t, ['n1', 'n2', 'n3'])
  const leader = await c.leader()
  const { result } = await leader.raft.propose(put('k', 'v1'))
  t.same(result, { ok: true, value: null })
  for (let i = 0; i < 50; i++) await leader.raft.propose(put('k', `v${i}`))
  await until('every node applied the writes', () => c.peers.every(p => p.sm.kv.get('k') === 'v49'))

  // Lossy, slow links: Raft retries through drops and delays.
  c.faults.dropRaft(0.2)
  c.faults.delayRaft(m => m.type === 'Append' ? 3 : 0)
  for (let i = 0; i < 10; i++) await leader.raft.propose(put('lossy', String(i)), { timeoutMs: 10_000 })
  await until('writes commit despite drops and delays', () => c.peers.every(p => p.sm.kv.get('lossy') === '9'))
  t.ok(c.faults.dropped > 0, `the fault layer dropped ${c.faults.dropped} Raft messages`)
  c.faults.clearRaft()

  // A one-way cut from the leader to one follower: the other follower makes the majority.
  const cutOff = c.peers.find(p => p !== leader) as Peer
  c.faults.cutRaft(leader.id, cutOff.id)
  await leader.raft.propose(put('cut', 'yes'))
  await until('the majority applied it', () => c.peers.filter(p => p !== cutOff).every(p => p.sm.kv.get('cut') === 'yes'))
  c.faults.clearRaft()
  await until('the cut-off follower catches up once the cut is lifted', () => cutOff.sm.kv.get('cut') === 'yes')

  for (const p of c.peers) {
    const s = p.transport.stats()
    t.equal(s.badFrames, 0, `${p.id}: no bad frames`)
    t.ok(s.streamsOpened <= 2, `${p.id}: one long-lived stream per peer, not one per message (${s.streamsOpened} opened, ${s.sent} sent)`)
  }
})

t.test('a 5-node cluster elects and replicates', async t => {
  const c = await cluster(t, ['n1', 'n2', 'n3', 'n4', 'n5'])
  const leader = await c.leader()
  for (let i = 0; i < 20; i++) await leader.raft.propose(put(`k${i % 3}`, `v${i}`))
  await until('all five converge', () => c.peers.every(p => p.sm.kv.get('k1') === 'v19' && p.sm.kv.get('k0') === 'v18'))
  t.equal(c.leaders().length, 1, 'exactly one leader')
})

t.test('a restarted node (same data dir and peer key, WAL storage) catches up', async t => {
  const c = await cluster(t, ['n1', 'n2', 'n3'], dir => new FileLogStore({ dir, segmentBytes: 64 * 1024 }))
  const leader = await c.leader()
  await leader.raft.propose(put('before', '1'))
  const victim = c.peers.find(p => p !== leader) as Peer
  await until('the victim applied the first write', () => victim.sm.kv.get('before') === '1')
  const oldPeerId = victim.mesh.peerId
  await c.stopPeer(victim)
  for (let i = 0; i < 30; i++) await leader.raft.propose(put('during', String(i)))
  const back = await c.startPeer(victim.id)
  t.equal(back.mesh.peerId, oldPeerId, 'the restarted node keeps its peer id')
  await until('the others see it again', () => c.peers.every(p => p === back || p.mesh.membership.isAlive(back.id)))
  await until('the restarted node caught up', () => back.sm.kv.get('during') === '29' && back.sm.kv.get('before') === '1')
  const current = await c.leader()
  await current.raft.propose(put('after', 'x'))
  await until('it keeps up with new writes', () => back.sm.kv.get('after') === 'x')
})

t.test('a follower far behind is caught up by a chunked snapshot over libp2p', async t => {
  const c = await cluster(t, ['n1', 'n2', 'n3'], dir => new FileLogStore({ dir, segmentBytes: 64 * 1024 }), 40)
  const leader = await c.leader()
  const victim = c.peers.find(p => p !== leader) as Peer
  await c.stopPeer(victim)
  for (let i = 0; i < 150; i++) await leader.raft.propose(put(`k${i % 10}`, `${'v'.repeat(200)}${i}`))
  t.ok(leader.raft.status().snapshotIndex > 3, 'the leader compacted its log past what the stopped node has')
  const back = await c.startPeer(victim.id)
  await until('the laggard caught up', () => back.sm.kv.get('k9') === `${'v'.repeat(200)}149`)
  t.ok(back.raft.status().snapshotIndex > 3, 'it installed the leader\'s snapshot rather than replaying the log')
  for (let i = 0; i < 10; i++) t.equal(back.sm.kv.get(`k${i}`), leader.sm.kv.get(`k${i}`), `k${i} matches the leader`)
})

t.test('a partition elects a new leader on the majority side; heal converges', async t => {
  const c = await cluster(t, ['n1', 'n2', 'n3', 'n4', 'n5'])
  const old = await c.leader()
  const oldTerm = old.raft.status().term
  const buddy = c.peers.find(p => p !== old) as Peer
  const majority = c.peers.filter(p => p !== old && p !== buddy)
  await c.faults.partition([old.mesh, buddy.mesh])
  const fresh = await c.leader(majority)
  t.ok(fresh.raft.status().term > oldTerm, 'the majority elected a leader in a later term')
  await fresh.raft.propose(put('side', 'majority'))
  await until('the majority applied the write', () => majority.every(p => p.sm.kv.get('side') === 'majority'))
  t.equal(old.sm.kv.get('side'), null, 'the minority did not see it')
  await t.rejects(old.raft.propose(put('side', 'minority'), { timeoutMs: 1500 }), 'the old leader cannot commit without a majority')
  c.faults.heal()
  await until('the mesh is whole again', () => c.peers.every(p => p.mesh.members().length === 4))
  await until('everyone converged on the majority write', () => c.peers.every(p => p.sm.kv.get('side') === 'majority'))
  const leader = await c.leader()
  await leader.raft.propose(put('healed', 'yes'))
  await until('all five apply after the heal', () => c.peers.every(p => p.sm.kv.get('healed') === 'yes'))
  t.equal(c.leaders().length, 1, 'one leader')
})

/** Valid-looking Raft messages that claim to come from a voter other than the sender. */
function spoofedMessage (): fc.Arbitrary<Message> {
  const env = { from: fc.constantFrom('n2', 'n3'), to: fc.constant('n1'), term: fc.nat(50) }
  const entry = fc.record({ index: fc.constant(0), term: fc.nat(50), type: fc.constantFrom(0 as const, 1 as const, 2 as const), data: fc.uint8Array({ maxLength: 64 }) })
  return fc.oneof(
    fc.record({ type: fc.constantFrom('PreVote' as const, 'Vote' as const), ...env, lastIndex: fc.nat(100), lastTerm: fc.nat(50), force: fc.boolean() }),
    fc.record({ type: fc.constantFrom('PreVoteResp' as const, 'VoteResp' as const), ...env, reject: fc.boolean() }),
    fc.record({ type: fc.constant('Append' as const), ...env, prevIndex: fc.nat(100), prevTerm: fc.nat(50), entries: fc.array(entry, { maxLength: 4 }), commit: fc.nat(100) })
      .map(m => ({ ...m, entries: m.entries.map((e, i) => ({ ...e, index: m.prevIndex + 1 + i })) })),
    fc.record({ type: fc.constant('AppendResp' as const), ...env, reject: fc.boolean(), index: fc.nat(100), hintIndex: fc.nat(100), hintTerm: fc.nat(50) }),
    fc.record({ type: fc.constant('Heartbeat' as const), ...env, commit: fc.nat(100), readSeq: fc.nat(10), quiesce: fc.boolean() }),
    fc.record({ type: fc.constant('Commit' as const), ...env, commit: fc.nat(100) }),
    fc.record({ type: fc.constant('TimeoutNow' as const), ...env }),
    fc.record({ type: fc.constant('ReadIndexResp' as const), ...env, ctx: fc.string({ maxLength: 20 }), index: fc.integer({ min: -1, max: 100 }) })
  )
}

/** A valid frame with bytes flipped, cut, or inserted. */
function mutatedFrame (): fc.Arbitrary<Uint8Array> {
  return fc.tuple(spoofedMessage(), fc.array(fc.tuple(fc.nat(), fc.nat(255), fc.constantFrom('flip', 'cut', 'insert', 'keep')), { minLength: 1, maxLength: 4 }))
    .map(([m, edits]) => {
      let bytes = Array.from(encodeRaftMessage(m))
      for (const [pos, value, op] of edits) {
        const i = pos % Math.max(1, bytes.length)
        if (op === 'flip') bytes[i] = value
        else if (op === 'cut') bytes = bytes.slice(0, i)
        else if (op === 'insert') bytes.splice(i, 0, value)
      }
      return Uint8Array.from(bytes.length > 0 ? bytes : [0xc1])
    })
}

t.test('10,000 fuzzed frames on a real stream: no crash, no change to Raft state', async t => {
  const c = await cluster(t, ['n1', 'n2', 'n3'])
  const leader = await c.leader()
  await leader.raft.propose(put('k', 'before'))
  const target = c.peers.find(p => p.id === 'n1') as Peer
  await until('n1 applied', () => target.sm.kv.get('k') === 'before')
  // Mallory holds the secret and passes the handshake, but is no voter; every
  // frame it sends claims to come from a voter, so any that decodes is a spoof.
  const mallory = await createMeshNode({ nodeId: 'mallory', clusterName: 'raft-test', appVersion: '1', secret: SECRET, dataDir: join(c.root, 'mallory'), bootstrap: [target.mesh.multiaddrs[0]] })
  t.teardown(async () => { await mallory.stop() })
  await until('mallory is a member of n1', () => target.mesh.membership.isAlive('mallory'))

  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000)
  t.comment(`fuzz seed ${seed}; replay with FUZZ_SEED=${seed} npx tap test/raft-transport.test.ts`)
  const frames = fc.sample(fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 512 }), mutatedFrame(), spoofedMessage().map(encodeRaftMessage)), { numRuns: 10_000, seed })
  const before = target.raft.status()
  const statsBefore = target.transport.stats()
  const stream = await mallory.libp2p.dialProtocol(target.mesh.libp2p.peerId, RAFT_PROTOCOL)
  for (let i = 0; i < frames.length; i += 250) {
    const chunk = Buffer.concat(frames.slice(i, i + 250).map(lengthPrefixed))
    if (!stream.send(chunk)) await stream.onDrain()
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  await until('n1 counted every frame as bad', () => target.transport.stats().badFrames - statsBefore.badFrames === frames.length)
  const after = target.raft.status()
  t.equal(after.term, before.term, 'term unchanged')
  t.ok(after.commitIndex >= before.commitIndex, 'commit index never went back')
  t.equal(target.raft.leader, leader.id, 'n1 still follows the same leader')
  t.equal(target.sm.kv.get('k'), 'before', 'state machine untouched')
  t.comment(`n1 dropped ${target.transport.stats().badFrames} bad frames`)

  // Broken framing (a declared length far over the limit) costs the stream, not the node.
  const bad = await mallory.libp2p.dialProtocol(target.mesh.libp2p.peerId, RAFT_PROTOCOL)
  const closed = new Promise(resolve => { bad.addEventListener('close', resolve) })
  bad.send(uvarint(2 ** 40))
  await closed
  t.pass('the stream with broken framing was aborted')

  const current = await c.leader()
  await current.raft.propose(put('k', 'after'))
  await until('the cluster, n1 included, still works', () => c.peers.every(p => p.sm.kv.get('k') === 'after'))
})
