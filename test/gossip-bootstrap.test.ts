/**
 * Nodes that all list each other as bootstrap peers (the natural
 * configuration) and start together: every member joins without being seen
 * failing or leaving, each pair shares one connection (the larger peer id
 * waits before dialing, so the two do not dial each other at once), and
 * every channel message reaches every other node.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { ChannelMessage } from '../gossip/channel.js'
import { createMeshNode, type MeshNode } from '../gossip/node.js'
import { freePort } from '../testkit/local-cluster.js'

const base = { clusterName: 'dup', appVersion: '1', secret: 'a cluster secret of some length' }

async function until (what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/** A data directory per node id with its peer key made, a free port each, and the peer ids (the key is persisted in the data directory). */
async function prepare (t: Test, ids: readonly string[]): Promise<{ root: string, listen: (i: number) => string[], peerIds: string[] }> {
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-bootstrap-'))
  t.teardown(async () => { await rm(root, { recursive: true, force: true }) })
  const ports = await Promise.all(ids.map(async () => await freePort()))
  const listen = (i: number): string[] => [`/ip4/127.0.0.1/tcp/${ports[i]}`]
  const peerIds: string[] = []
  for (const [i, id] of ids.entries()) {
    const m = await createMeshNode({ ...base, nodeId: id, dataDir: join(root, id), listen: listen(i), start: false })
    peerIds.push(m.peerId)
    await m.stop()
  }
  return { root, listen, peerIds }
}

t.test('nodes that list each other as bootstrap peers and start together join over one connection per pair and hear each other', async t => {
  const ids = ['n1', 'n2', 'n3', 'n4']
  const { root, listen, peerIds } = await prepare(t, ids)
  const everyone = ids.map((_, i) => `${listen(i)[0]}/p2p/${peerIds[i]}`)

  for (let round = 0; round < 3; round++) {
    const downs: string[] = []
    const nodes: MeshNode[] = await Promise.all(ids.map(async (id, i) => await createMeshNode({ ...base, nodeId: id, dataDir: join(root, id), listen: listen(i), bootstrap: everyone })))
    for (const n of nodes) {
      n.membership.on('failed', m => downs.push(`${n.nodeId} saw ${m.nodeId} fail`))
      n.membership.on('leave', m => downs.push(`${n.nodeId} saw ${m.nodeId} leave`))
    }
    const channels = nodes.map(n => n.channel('dup/events'))
    try {
      await until('every member alive everywhere', () => nodes.every(n => n.members().length === ids.length - 1))
      // Settled, not passing through: nobody drops out or dials again afterwards.
      await new Promise(resolve => setTimeout(resolve, 1500))
      t.same(nodes.map(n => n.members().length), ids.map(() => ids.length - 1), `round ${round}: every member alive everywhere`)
      t.same(nodes.map(n => n.libp2p.getConnections().length), ids.map(() => ids.length - 1), `round ${round}: one connection per pair`)
      t.same(downs, [], `round ${round}: no member was seen failing or leaving`)

      await until('every channel sees the others subscribed', () => channels.every(c => c.peers().length === ids.length - 1))
      const got = channels.map(() => [] as ChannelMessage[])
      channels.forEach((c, i) => c.on('message', m => got[i].push(m)))
      for (const c of channels) c.publish(new TextEncoder().encode('hello'))
      await until('every node hears every other', () => got.every(g => g.length === ids.length - 1))
      t.pass(`round ${round}: gossip reaches everyone`)
    } finally {
      for (const c of channels) await c.close()
      await Promise.all(nodes.map(async n => { await n.stop() }))
    }
  }
})

t.test('a peer another member told of is dialed again until it is a member: one failed dial no longer leaves the pair apart for good', async t => {
  const ids = ['n1', 'n2', 'n3']
  const { root, listen, peerIds } = await prepare(t, ids)
  const n1Addr = `${listen(0)[0]}/p2p/${peerIds[0]}`
  const start = async (i: number): Promise<MeshNode> => await createMeshNode({ ...base, nodeId: ids[i], dataDir: join(root, ids[i]), listen: listen(i), bootstrap: i === 0 ? [] : [n1Addr] })
  const n1 = await start(0)
  const n2 = await start(1)
  t.teardown(async () => { await n1.stop(); await n2.stop() })
  await until('n1 and n2 joined', () => n1.members().length === 1 && n2.members().length === 1)
  // n2 refuses n3 while n3 learns of it from n1: n3's first dial of n2 fails, and n2 does not dial n3 either.
  n2.gate.deny([peerIds[2]])
  const n3 = await start(2)
  t.teardown(async () => { await n3.stop() })
  await until('n3 joined n1', () => n3.members().some(m => m.nodeId === 'n1') && n1.members().length === 2)
  // Long enough for every one-off dial (the tie-break wait, libp2p's own discovery) to have failed.
  await new Promise(resolve => setTimeout(resolve, 3000))
  t.notOk(n3.members().some(m => m.nodeId === 'n2'), 'n2 and n3 are apart while n2 refuses n3')
  // No redialNow(), no new peer exchange: only n3 dialing n2 again can join them.
  n2.gate.allow([peerIds[2]])
  await until('n2 and n3 joined', () => n3.members().some(m => m.nodeId === 'n2') && n2.members().some(m => m.nodeId === 'n3'), 10_000)
  t.pass('n3 dialed n2 again and the mesh is whole')
})
