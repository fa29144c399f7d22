/**
 * The mesh's noise connections (gossip/quiet-noise.ts) decode received
 * chunks without throwing, and still deliver every byte: two mesh nodes,
 * one stream carrying messages from 1 byte to several noise frames long,
 * checked by digest, while every "not enough bytes" RangeError noise's
 * length decoder throws is counted.
 */
import type { Stream } from '@libp2p/interface'
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Uint8ArrayList } from 'uint8arraylist'
import { createMeshNode } from '../gossip/node.js'
import { until } from './helpers/service-nodes.js'
import { frameLengthOrZero } from '../gossip/quiet-noise.js'

const PROTOCOL = '/raftmesh-test/quiet-noise/1.0.0'
/** What @libp2p/noise's uint16BEDecode throws while a frame's length prefix is incomplete. */
const SHORT_PREFIX = 'Could not decode int16BE'

t.test('frameLengthOrZero reads the 2-byte prefix and answers 0 while it is incomplete', async t => {
  t.equal(frameLengthOrZero(new Uint8Array(0)), 0)
  t.equal(frameLengthOrZero(Uint8Array.of(7)), 0)
  t.equal(frameLengthOrZero(Uint8Array.of(1, 2, 9)), 258)
  t.equal(frameLengthOrZero(new Uint8ArrayList(Uint8Array.of(0xff))), 0)
  t.equal(frameLengthOrZero(new Uint8ArrayList(Uint8Array.of(0xff), Uint8Array.of(0xfe, 1))), 65534)
})

t.test('noise connections deliver every byte without a RangeError per chunk', async t => {
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-noise-'))
  const a = await createMeshNode({ nodeId: 'a', clusterName: 'noise', appVersion: '1', secret: 'a cluster secret of some length', dataDir: join(root, 'a') })
  const b = await createMeshNode({ nodeId: 'b', clusterName: 'noise', appVersion: '1', secret: 'a cluster secret of some length', dataDir: join(root, 'b'), bootstrap: [a.multiaddrs[0]] })
  const original = globalThis.RangeError
  let shortPrefixErrors = 0
  const count = (args: unknown[]): void => { if (args[0] === SHORT_PREFIX) shortPrefixErrors++ }
  globalThis.RangeError = new Proxy(original, {
    apply (target, self, args) { count(args); return Reflect.apply(target, self, args) },
    construct (target, args, newTarget) { count(args); return Reflect.construct(target, args, newTarget) }
  })
  t.teardown(async () => {
    globalThis.RangeError = original
    await b.stop()
    await a.stop()
    await rm(root, { recursive: true, force: true })
  })
  const received = createHash('sha256')
  let receivedBytes = 0
  await b.libp2p.handle(PROTOCOL, (stream: Stream) => {
    stream.addEventListener('message', evt => {
      for (const chunk of evt.data instanceof Uint8Array ? [evt.data] : evt.data) received.update(chunk)
      receivedBytes += evt.data.byteLength
    })
  })
  await until('a and b joined', () => a.membership.isAlive('b') && b.membership.isAlive('a'))
  // Counted from here: the handshake's own length-prefixed reads are not the hot path.
  shortPrefixErrors = 0
  const stream = await a.libp2p.dialProtocol(b.libp2p.peerId, PROTOCOL)
  const sent = createHash('sha256')
  let sentBytes = 0
  // Sizes from one byte to several 64 KiB noise frames, so frames end inside chunks and span them.
  for (let i = 0; i < 400; i++) {
    const size = i % 50 === 49 ? 150_000 + i : 1 + (i * 7919) % 3000
    const msg = new Uint8Array(size).map((_, k) => (k * 31 + i) & 0xff)
    sent.update(msg)
    sentBytes += size
    if (!stream.send(msg)) await stream.onDrain({ signal: AbortSignal.timeout(10_000) })
    if (i % 10 === 0) await new Promise(resolve => setImmediate(resolve))
  }
  await until(`${sentBytes} bytes arrived`, () => receivedBytes >= sentBytes)
  t.equal(receivedBytes, sentBytes, 'every byte arrived')
  t.equal(received.digest('hex'), sent.digest('hex'), 'in order and intact')
  t.equal(shortPrefixErrors, 0, 'no chunk threw to say it held no complete length prefix')
})
