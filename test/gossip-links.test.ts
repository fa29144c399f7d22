/**
 * The gossipsub link between two connected members, on real nodes: a
 * receiver that stops reading while the other floods the topic past
 * gossipsub's outbound buffer gets that stream aborted, and without repair
 * the two members stay connected and never hear each other's gossip again
 * (seed 3044 of the faults bench). The link watcher reopens the streams,
 * reports the break on both sides, and resets the connection when the
 * streams cannot be reopened.
 */
import type { Stream } from '@libp2p/interface'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { GossipChannel } from '../gossip/channel.js'
import { reopenGossipStreams } from '../gossip/gossip-links.js'
import { createMeshNode, type MeshNode } from '../gossip/node.js'
import { until } from './helpers/service-nodes.js'

const SECRET = 'a cluster secret of some length'
const TOPIC = 'test/links'

interface Node { mesh: MeshNode, channel: GossipChannel, got: string[], relinked: string[] }

async function pair (t: Test, name: string, opts: { gossipLinkTimeoutMs?: number } = {}): Promise<[Node, Node]> {
  const root = await mkdtemp(join(tmpdir(), `raftmesh-${name}-`))
  const nodes: Node[] = []
  t.teardown(async () => {
    for (const n of nodes) await n.channel.close()
    for (const n of nodes) await n.mesh.stop()
    await rm(root, { recursive: true, force: true })
  })
  for (const id of ['a', 'b']) {
    const mesh = await createMeshNode({ nodeId: id, clusterName: name, appVersion: '1', secret: SECRET, dataDir: join(root, id), bootstrap: nodes.slice(0, 1).map(n => n.mesh.multiaddrs[0]), ...opts })
    const node: Node = { mesh, channel: mesh.channel(TOPIC), got: [], relinked: [] }
    node.channel.on('message', m => { node.got.push(new TextDecoder().decode(m.payload)) })
    mesh.gossipLinks.on('relinked', id => { node.relinked.push(id) })
    nodes.push(node)
  }
  const [a, b] = nodes
  await until('both links are whole', () => a.mesh.gossipLinks.isUp('b') && b.mesh.gossipLinks.isUp('a'))
  return [a, b]
}

/** The node's open gossipsub streams in one direction (more than one if a replaced one lingers half-closed). */
function gossipStreams (mesh: MeshNode, direction: 'inbound' | 'outbound'): Stream[] {
  const ss = mesh.libp2p.getConnections().flatMap(c => c.streams).filter(s => s.protocol.startsWith('/meshsub/') && s.direction === direction && s.status === 'open')
  if (ss.length === 0) throw new Error(`${mesh.nodeId} has no ${direction} gossipsub stream`)
  return ss
}

/** Each publishes a payload every 100 ms until one of each has crossed (or throws after `ms`). */
async function exchange (a: Node, b: Node, tag: string, ms = 5000): Promise<void> {
  let i = 0
  let next = 0
  await until(`gossip "${tag}" crossing both ways`, () => {
    if (Date.now() >= next) {
      i++
      next = Date.now() + 100
      a.channel.publish(new TextEncoder().encode(`${tag} from a`))
      b.channel.publish(new TextEncoder().encode(`${tag} from b`))
    }
    return b.got.includes(`${tag} from a`) && a.got.includes(`${tag} from b`)
  }, ms)
}

const connectionIds = (n: Node): string[] => n.mesh.libp2p.getConnections().map(c => c.id).sort()

t.test('the gossipsub internal the repair calls is still there', async t => {
  const [a] = await pair(t, 'links-internal')
  const conn = a.mesh.libp2p.getConnections()[0]
  t.equal(typeof (a.mesh.libp2p.services.pubsub as unknown as Record<string, unknown>).onPeerConnected, 'function', 'gossipsub still has onPeerConnected (see reopenGossipStreams)')
  t.equal(reopenGossipStreams(a.mesh.libp2p.services.pubsub, conn), true)
  await new Promise(resolve => setTimeout(resolve, 100))
  t.ok(a.mesh.gossipLinks.isUp('b'), 'reopening a whole link leaves it whole')
})

t.test('a receiver stalled while its peer floods the topic: the aborted stream is reopened and gossip flows both ways again', async t => {
  const [a, b] = await pair(t, 'links-flood')
  await exchange(a, b, 'before')
  const conns = [connectionIds(a), connectionIds(b)]
  // b stops reading a's gossip (as a stalled process does); a publishes
  // more than its 8 MiB send buffer for b can hold, and libp2p aborts the stream.
  const reading = gossipStreams(b.mesh, 'inbound')
  for (const s of reading) s.pause()
  const big = new Uint8Array(200 * 1024)
  // Whichever side checks first finds the break and reopens; the other may only see its streams replaced.
  const broken = (): number => a.mesh.gossipLinks.stats().broken + b.mesh.gossipLinks.stats().broken
  await until('a side finds the gossip link broken', () => {
    a.channel.publish(big)
    return broken() > 0
  }, 15_000)
  for (const s of reading) s.resume()
  await exchange(a, b, 'after')
  await until('both sides report the link whole again', () => a.relinked.includes('b') && b.relinked.includes('a'))
  t.same([connectionIds(a), connectionIds(b)], conns, 'the connection itself stayed up')
  t.same(a.mesh.members().map(m => m.nodeId), ['b'])
  t.same(b.mesh.members().map(m => m.nodeId), ['a'])
  t.same(a.mesh.libp2p.services.pubsub.getSubscribers(TOPIC).map(String), [b.mesh.peerId], 'a sees b subscribed')
  t.same(b.mesh.libp2p.services.pubsub.getSubscribers(TOPIC).map(String), [a.mesh.peerId], 'b sees a subscribed again')
  t.same(a.mesh.gossipLinks.stats().resets + b.mesh.gossipLinks.stats().resets, 0, 'no connection was reset')
})

t.test('a link that cannot be reopened has its connection reset: the member fails, rejoins, and gossip flows again', async t => {
  const [a, b] = await pair(t, 'links-reset', { gossipLinkTimeoutMs: 1000 })
  // As if gossipsub had no onPeerConnected (another version): nothing reopens the streams.
  for (const n of [a, b]) Object.defineProperty(n.mesh.libp2p.services.pubsub, 'onPeerConnected', { value: undefined, configurable: true })
  const failed: string[] = []
  a.mesh.membership.on('failed', m => { failed.push(m.nodeId) })
  for (const s of gossipStreams(a.mesh, 'outbound')) s.abort(new Error('a stream error'))
  await until('a resets its connection to b', () => a.mesh.gossipLinks.stats().resets + b.mesh.gossipLinks.stats().resets > 0)
  await until('b fails and rejoins', () => failed.includes('b') && a.mesh.members().length === 1 && b.mesh.members().length === 1)
  await exchange(a, b, 'after the reset', 15_000)
  t.pass('gossip flows on the new connection')
})
