/**
 * The mesh's yamux streams (gossip/yamux-window.ts) answer small messages
 * with no window update, and still let a transfer of many windows through:
 * two mesh nodes, one stream between them, updates counted as the sender
 * receives them.
 */
import type { Stream } from '@libp2p/interface'
import { YamuxStream } from '@libp2p/yamux/stream'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createMeshNode } from '../gossip/node.js'
import { until } from './helpers/service-nodes.js'

const PROTOCOL = '/raftmesh-test/yamux-window/1.0.0'

t.test('window updates once half the window is used, not per message', async t => {
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-yamux-'))
  const a = await createMeshNode({ nodeId: 'a', clusterName: 'yamux', appVersion: '1', secret: 'a cluster secret of some length', dataDir: join(root, 'a') })
  const b = await createMeshNode({ nodeId: 'b', clusterName: 'yamux', appVersion: '1', secret: 'a cluster secret of some length', dataDir: join(root, 'b'), bootstrap: [a.multiaddrs[0]] })
  t.teardown(async () => {
    await b.stop()
    await a.stop()
    await rm(root, { recursive: true, force: true })
  })
  let received = 0
  await b.libp2p.handle(PROTOCOL, (stream: Stream) => {
    stream.addEventListener('message', evt => { received += evt.data.byteLength })
  })
  await until('a and b joined', () => a.membership.isAlive('b') && b.membership.isAlive('a'))
  const updates = new Map<YamuxStream, number>()
  const handle = YamuxStream.prototype.handleWindowUpdate
  YamuxStream.prototype.handleWindowUpdate = function (this: YamuxStream, frame) {
    updates.set(this, (updates.get(this) ?? 0) + 1)
    handle.call(this, frame)
  }
  t.teardown(() => { YamuxStream.prototype.handleWindowUpdate = handle })
  const stream = await a.libp2p.dialProtocol(b.libp2p.peerId, PROTOCOL)
  const before = updates.get(stream as unknown as YamuxStream) ?? 0

  for (let i = 0; i < 200; i++) {
    stream.send(new Uint8Array(100).fill(i))
    await new Promise(resolve => setImmediate(resolve))
  }
  await until('200 small messages arrived', () => received === 200 * 100)
  t.equal((updates.get(stream as unknown as YamuxStream) ?? 0) - before, 0, '20 KB in 200 messages: no window update')

  const chunk = new Uint8Array(16 * 1024)
  const total = 4 * 1024 * 1024
  for (let sent = 0; sent < total; sent += chunk.byteLength) {
    if (!stream.send(chunk)) await stream.onDrain({ signal: AbortSignal.timeout(10_000) })
  }
  await until('4 MiB (16 windows) arrived', () => received === 200 * 100 + total)
  const during = (updates.get(stream as unknown as YamuxStream) ?? 0) - before
  // More than the first 256 KiB window needs updates to pass at all; the receiver also widens its window as it goes.
  t.ok(during >= 1 && during <= 32, `4 MiB took ${during} window updates, not one per 16 KiB frame (256)`)
})
