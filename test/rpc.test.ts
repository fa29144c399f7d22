/**
 * The mesh RPC on real libp2p nodes (127.0.0.1): round trips on one reused
 * stream, many calls in flight, errors carried back by name and code,
 * timeouts and aborts that cancel the handler, bounded queues, and pending
 * calls rejected at once when the callee leaves, is cut off or is killed.
 * Inbound traffic is distrusted: a peer that never handshook is refused, and
 * a member sending fuzzed frames neither crashes the callee nor goes
 * uncounted.
 */
import { noise } from '@libp2p/noise'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import fc from 'fast-check'
import { createLibp2p } from 'libp2p'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { equals, fromString, toString } from 'uint8arrays'
import { InvalidArgumentError, PeerUnavailableError, RemoteCallError, RpcOverloadedError, RpcTimeoutError, UnknownMethodError } from '../gossip/errors.js'
import { FaultInjector } from '../gossip/fault.js'
import { lengthPrefixed, uvarint } from '../gossip/length-prefix.js'
import { createMeshNode, type MeshNode } from '../gossip/node.js'
import { encodeRpcFrame, FailureKind } from '../gossip/rpc-codec.js'
import { RpcLink } from '../gossip/rpc-link.js'
import { MeshRpc, RPC_PROTOCOL, type MeshRpcOptions, type RpcContext } from '../gossip/rpc.js'
import { swarmKeyFromSecret } from '../gossip/swarm-key.js'
import { TS_IMPORT } from '../testkit/ts-import.js'

const SECRET = 'a cluster secret of some length'
const FIXTURE = fileURLToPath(new URL('./fixtures/rpc-node.ts', import.meta.url))
const ROOT_DIR = fileURLToPath(new URL('..', import.meta.url))

async function until (what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

interface Node { readonly id: string, readonly mesh: MeshNode, readonly rpc: MeshRpc }

/** Mesh nodes with an RPC endpoint each, bootstrapped through the first; all stopped at teardown. */
async function nodes (t: Test, ids: string[], rpcOpts: Record<string, MeshRpcOptions> = {}): Promise<Node[]> {
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-rpc-'))
  const out: Node[] = []
  t.teardown(async () => {
    for (const n of out) {
      await n.rpc.close()
      await n.mesh.stop()
    }
    await rm(root, { recursive: true, force: true })
  })
  for (const id of ids) {
    const mesh = await createMeshNode({ nodeId: id, clusterName: 'rpc-test', appVersion: '1', secret: SECRET, dataDir: join(root, id), bootstrap: out.slice(0, 1).map(n => n.mesh.multiaddrs[0]) })
    out.push({ id, mesh, rpc: await MeshRpc.create(mesh, rpcOpts[id]) })
  }
  await until('a full mesh', () => out.every(n => n.mesh.members().length === ids.length - 1))
  return out
}

/** Registers `hang`: a handler that never answers, and records each call's context. */
function hanging (rpc: MeshRpc): RpcContext[] {
  const seen: RpcContext[] = []
  rpc.handle('hang', async (_body, ctx) => {
    seen.push(ctx)
    return await new Promise<Uint8Array>((_resolve, reject) => {
      ctx.signal.addEventListener('abort', () => { reject(ctx.signal.reason) }, { once: true })
    })
  })
  return seen
}

/** A call expected to reject while nothing else would end it (it has no timeout). */
interface Watched { settled: boolean, error: any }

function watch (p: Promise<unknown>): Watched {
  const w: Watched = { settled: false, error: undefined }
  p.then(() => { w.settled = true }, err => { w.settled = true; w.error = err })
  return w
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection (p: Promise<unknown>): Promise<any> {
  try {
    await p
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

t.test('a call round-trips, and every call to a member reuses one stream', async t => {
  const [a, b] = await nodes(t, ['a', 'b'])
  const froms: string[] = []
  b.rpc.handle('greet', async (body, ctx) => {
    froms.push(ctx.from)
    return fromString(`hello, ${toString(body)}`)
  })
  a.rpc.handle('greet', async body => fromString(`a greets ${toString(body)}`))
  t.equal(toString(await a.rpc.call('b', 'greet', fromString('world'))), 'hello, world')
  for (let i = 0; i < 50; i++) t.equal(toString(await a.rpc.call('b', 'greet', fromString(`#${i}`))), `hello, #${i}`)
  t.equal(toString(await b.rpc.call('a', 'greet', fromString('b'))), 'a greets b', 'the other way on its own stream')
  t.same(new Set(froms), new Set(['a']), 'the handler is told the caller\'s node id')
  t.equal(a.rpc.stats().streamsOpened, 1, 'a opened one stream for 51 calls')
  t.equal(b.rpc.stats().streamsOpened, 1)
  t.match(a.rpc.stats(), { calls: 51, failed: 0, pending: 0, badFrames: 0 })
  t.match(b.rpc.stats(), { served: 51, handlerErrors: 0, badFrames: 0 })
  t.ok(equals(await a.rpc.call('b', 'greet', new Uint8Array(0)), fromString('hello, ')), 'an empty body is a body')
})

t.test('1,000 concurrent calls are multiplexed on one stream and each gets its own answer', async t => {
  const [a, b] = await nodes(t, ['a', 'b'])
  b.rpc.handle('double', async body => {
    // Answer out of order: later requests may finish first.
    if (body[0] % 3 === 0) await new Promise(resolve => setImmediate(resolve))
    return fromString(String(Number(toString(body)) * 2))
  })
  const n = 1000
  const answers = await Promise.all(Array.from({ length: n }, async (_, i) => toString(await a.rpc.call('b', 'double', fromString(String(i))))))
  t.same(answers, Array.from({ length: n }, (_, i) => String(i * 2)), 'every answer matches its request')
  t.equal(a.rpc.stats().streamsOpened, 1)
  t.equal(b.rpc.stats().served, n)
})

t.test('a handler\'s error reaches the caller as RemoteCallError with its name, code and message', async t => {
  const [a, b] = await nodes(t, ['a', 'b'])
  class NotLeaderError extends Error {
    override readonly name = 'NotLeaderError'
    readonly code = 'ERR_NOT_LEADER'
  }
  b.rpc.handle('propose', async () => { throw new NotLeaderError('the leader is c') })
  b.rpc.handle('sync-throw', (() => { throw 'a string' }) as never) // eslint-disable-line @typescript-eslint/no-throw-literal
  b.rpc.handle('not-bytes', async () => 'text' as unknown as Uint8Array)
  const err = await rejection(a.rpc.call('b', 'propose', fromString('x')))
  t.type(err, RemoteCallError)
  t.match(err, { name: 'RemoteCallError', code: 'ERR_REMOTE_CALL', peer: 'b', method: 'propose', remoteName: 'NotLeaderError', remoteCode: 'ERR_NOT_LEADER', message: 'the leader is c' })
  t.match(await rejection(a.rpc.call('b', 'sync-throw', new Uint8Array(0))), { name: 'RemoteCallError', remoteName: 'Error', remoteCode: '', message: 'a string' }, 'a synchronous throw of a non-error is carried too')
  t.match(await rejection(a.rpc.call('b', 'not-bytes', new Uint8Array(0))), { name: 'RemoteCallError', remoteName: 'InvalidArgumentError' }, 'an answer that is not bytes is an error, not a crash')
  t.match(b.rpc.stats(), { served: 3, handlerErrors: 3 })
  t.match(a.rpc.stats(), { calls: 3, failed: 3 })
})

t.test('an unknown method is refused with UnknownMethodError; bad calls are refused locally', async t => {
  const [a, b] = await nodes(t, ['a', 'b'])
  const err = await rejection(a.rpc.call('b', 'nope', new Uint8Array(0)))
  t.type(err, UnknownMethodError)
  t.match(err, { code: 'ERR_UNKNOWN_METHOD', peer: 'b', method: 'nope' })
  t.equal(b.rpc.stats().unknownMethod, 1)
  await t.rejects(a.rpc.call('a', 'nope', new Uint8Array(0)), InvalidArgumentError, 'a call to this node itself')
  await t.rejects(a.rpc.call('b', 'x'.repeat(129), new Uint8Array(0)), InvalidArgumentError, 'a method name too long')
  await t.rejects(a.rpc.call('b', 'nope', new Uint8Array(1024 * 1024 + 1)), InvalidArgumentError, 'a body over the limit')
  t.throws(() => { b.rpc.handle('', async b => b) }, InvalidArgumentError, 'an empty method name')
  b.rpc.handle('m', async b => b)
  t.throws(() => { b.rpc.handle('m', async b => b) }, InvalidArgumentError, 'a second handler for one method')
  const missing = await rejection(a.rpc.call('ghost', 'm', new Uint8Array(0)))
  t.type(missing, PeerUnavailableError)
  t.match(missing, { peer: 'ghost', reason: 'not-member' }, 'a node that is not a member')
})

t.test('a timeout rejects with RpcTimeoutError and cancels the handler', async t => {
  const [a, b] = await nodes(t, ['a', 'b'])
  const seen = hanging(b.rpc)
  const err = await rejection(a.rpc.call('b', 'hang', new Uint8Array(0), { timeoutMs: 200 }))
  t.type(err, RpcTimeoutError)
  t.match(err, { code: 'ERR_RPC_TIMEOUT', peer: 'b', method: 'hang', timeoutMs: 200 })
  await until('the handler ran', () => seen.length === 1)
  await until('the handler\'s signal fires when the caller gives up', () => seen[0].signal.aborted)
  await until('b counted the cancel', () => b.rpc.stats().cancels === 1)
  t.equal(a.rpc.stats().pending, 0)
})

t.test('aborting the signal rejects with its reason and cancels the handler', async t => {
  const [a, b] = await nodes(t, ['a', 'b'])
  const seen = hanging(b.rpc)
  const ac = new AbortController()
  const call = watch(a.rpc.call('b', 'hang', new Uint8Array(0), { signal: ac.signal, timeoutMs: Infinity }))
  await until('the handler ran', () => seen.length === 1)
  const reason = new Error('the caller gave up')
  ac.abort(reason)
  await until('the call rejects', () => call.settled)
  t.equal(call.error, reason, 'rejected with the signal\'s reason')
  await until('the handler\'s signal fires', () => seen[0].signal.aborted)
  t.equal(await rejection(a.rpc.call('b', 'hang', new Uint8Array(0), { signal: ac.signal })), reason, 'an aborted signal rejects before sending')
  t.equal(seen.length, 1)
})

t.test('bounded queues refuse calls with RpcOverloadedError on both sides', async t => {
  const [a, b] = await nodes(t, ['a', 'b'], { a: { maxPendingCalls: 3, maxQueuedBytes: 4096 }, b: { maxConcurrentPerCaller: 2 } })
  const seen = hanging(b.rpc)
  const calls = [0, 1, 2].map(() => watch(a.rpc.call('b', 'hang', new Uint8Array(0), { timeoutMs: Infinity })))
  const local = await rejection(a.rpc.call('b', 'hang', new Uint8Array(0)))
  t.type(local, RpcOverloadedError)
  t.match(local, { where: 'local', peer: 'b' }, 'a fourth pending call is refused by the caller')
  await until('the third call is refused', () => calls[2].settled)
  const remote = calls[2].error
  t.type(remote, RpcOverloadedError)
  t.match(remote, { where: 'remote' }, 'a third running call is refused by the callee')
  t.equal(b.rpc.stats().busy, 1)
  t.equal(seen.length, 2, 'the refused call never ran')

  const [c] = await nodes(t, ['c'], { c: { maxQueuedBytes: 1000 } })
  await c.mesh.dial(b.mesh.multiaddrs[0])
  await until('c is a member of b', () => c.mesh.membership.isAlive('b') && b.mesh.membership.isAlive('c'))
  b.rpc.handle('echo', async body => body)
  // Both are queued in one turn, before the stream is even open.
  const first = c.rpc.call('b', 'echo', new Uint8Array(600))
  const second = await rejection(c.rpc.call('b', 'echo', new Uint8Array(600)))
  t.match(second, { name: 'RpcOverloadedError', where: 'local' }, 'bytes over maxQueuedBytes are refused')
  t.equal((await first).byteLength, 600, 'the queued call still goes through')
})

t.test('pending calls are rejected at once when the callee leaves', async t => {
  const [a, b] = await nodes(t, ['a', 'b'])
  const seen = hanging(b.rpc)
  const calls = [0, 1, 2].map(() => watch(a.rpc.call('b', 'hang', new Uint8Array(0), { timeoutMs: Infinity })))
  await until('the handlers run', () => seen.length === 3)
  // A clean stop of the mesh node (the endpoint left open): the caller hears `bye` first.
  await b.mesh.stop()
  await until('the calls (which have no timeout) reject', () => calls.every(c => c.settled))
  for (const { error } of calls) {
    t.type(error, PeerUnavailableError)
    t.match(error, { peer: 'b', reason: 'left' })
  }
  t.match(await rejection(a.rpc.call('b', 'hang', new Uint8Array(0))), { name: 'PeerUnavailableError', reason: 'not-member' }, 'and new calls fail fast')
  t.equal(a.rpc.stats().pending, 0)
})

t.test('pending calls are rejected at once when the callee is cut off; its handlers are aborted', async t => {
  const [a, b, c] = await nodes(t, ['a', 'b', 'c'])
  const seenB = hanging(b.rpc)
  c.rpc.handle('echo', async body => body)
  const calls = [0, 1].map(() => watch(a.rpc.call('b', 'hang', new Uint8Array(0), { timeoutMs: Infinity })))
  await until('the handlers run', () => seenB.length === 2)
  const faults = new FaultInjector([a.mesh, b.mesh, c.mesh])
  await faults.isolate(b.mesh)
  await until('the calls (which have no timeout) reject', () => calls.every(c => c.settled))
  for (const { error } of calls) {
    t.type(error, PeerUnavailableError)
    t.match(error, { peer: 'b', reason: /^(failed|stream-closed)$/ })
  }
  await until('the handlers on the cut-off node see their caller\'s stream go', () => seenB.every(ctx => ctx.signal.aborted))
  t.ok(equals(await a.rpc.call('c', 'echo', fromString('still here')), fromString('still here')), 'calls to the rest still work')
  faults.heal()
  await until('b is back', () => a.mesh.membership.isAlive('b'))
  b.rpc.handle('echo', async body => body)
  t.ok(equals(await a.rpc.call('b', 'echo', fromString('again')), fromString('again')), 'after the heal a new stream carries calls')
  t.equal(a.rpc.stats().streamsOpened, 3, 'one stream to b before the cut, one to c, one to b after')
})

t.test('pending calls are rejected at once when the callee process is killed (SIGKILL)', async t => {
  const [a] = await nodes(t, ['a'])
  const proc = spawn(process.execPath, [...TS_IMPORT, FIXTURE, JSON.stringify({ nodeId: 'k', clusterName: 'rpc-test', appVersion: '1', secret: SECRET, dataDir: join(tmpdir(), `raftmesh-rpc-k-${process.pid}`), bootstrap: [a.mesh.multiaddrs[0]] })], {
    cwd: ROOT_DIR,
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    await rm(join(tmpdir(), `raftmesh-rpc-k-${process.pid}`), { recursive: true, force: true })
  })
  const lines = createInterface({ input: proc.stdout })
  await once(lines, 'line', { signal: AbortSignal.timeout(20_000) })
  lines.close()
  await until('k joined', () => a.mesh.membership.isAlive('k'))
  t.ok(equals(await a.rpc.call('k', 'echo', fromString('ping')), fromString('ping')), 'a call to the other process works')
  const calls = Array.from({ length: 5 }, () => watch(a.rpc.call('k', 'hang', new Uint8Array(0), { timeoutMs: Infinity })))
  await until('the calls are pending', () => a.rpc.stats().pending === 5)
  proc.kill('SIGKILL')
  await until('the calls (which have no timeout) reject', () => calls.every(c => c.settled))
  for (const { error } of calls) {
    t.type(error, PeerUnavailableError)
    t.match(error, { peer: 'k', reason: /^(failed|stream-closed)$/ })
  }
})

/** Holds the cluster secret, so it gets a connection, but never starts the join handshake; stopped at teardown. */
async function strangerNode (t: Test): Promise<Awaited<ReturnType<typeof createLibp2p>>> {
  const node = await createLibp2p({
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: preSharedKey({ psk: swarmKeyFromSecret(SECRET) }),
    connectionMonitor: { enabled: false }
  })
  t.teardown(async () => { await node.stop() })
  return node
}

t.test('a peer that never passed the handshake is refused', async t => {
  const [b] = await nodes(t, ['b'])
  let ran = 0
  b.rpc.handle('echo', async body => { ran++; return body })
  const stranger = await strangerNode(t)
  const stream = await stranger.dialProtocol(multiaddr(b.mesh.multiaddrs[0]), RPC_PROTOCOL)
  try {
    stream.send(lengthPrefixed(encodeRpcFrame({ t: 'request', id: 1, method: 'echo', body: fromString('let me in') })))
  } catch {
    // Refused already: the stream was aborted as soon as it was accepted.
  }
  await until('the stream is refused', () => stream.status !== 'open')
  t.equal(b.rpc.stats().notMember, 1, 'counted')
  t.equal(ran, 0, 'the handler never ran')
  t.equal(b.mesh.membership.alive().length, 0, 'and it is no member')
})

t.test('a link whose stream the callee refused before the caller saw it open fails its calls at once', async t => {
  const [b] = await nodes(t, ['b'])
  const stranger = await strangerNode(t)
  // The race seen in a healed partition: the callee resets the stream (the
  // caller is not yet its member) before the caller's link starts listening.
  const refused = await stranger.dialProtocol(multiaddr(b.mesh.multiaddrs[0]), RPC_PROTOCOL)
  await until('the stream is refused', () => refused.status !== 'open')
  const counters = { streamsOpened: 0, badFrames: 0, lateResponses: 0 }
  let downs = 0
  const link = new RpcLink('b', b.mesh.peerId, async () => refused, { maxPendingCalls: 10, maxQueuedBytes: 1 << 20, maxBodyBytes: 1 << 16, maxFrameBytes: 1 << 17 }, counters, () => {}, () => { downs++ })
  const err = await rejection(link.call('echo', fromString('anyone?'), 10_000, undefined))
  t.ok(err instanceof PeerUnavailableError, `rejected as unavailable, not left to time out (${String(err)})`)
  t.equal(downs, 1, 'the link reported itself down, so the next call makes a new one')
  t.equal(counters.streamsOpened, 0, 'a refused stream is not counted as opened')
})

/** Frames a member might send a callee that must all be refused: garbage, wrong shapes, wrong direction, mutated requests. */
function hostileFrames (): fc.Arbitrary<Uint8Array> {
  const request = fc.record({ id: fc.integer({ min: 1, max: 50 }), method: fc.constantFrom('echo', 'nope'), body: fc.uint8Array({ maxLength: 64 }) })
    .map(r => encodeRpcFrame({ t: 'request', ...r }))
  const mutated = fc.tuple(request, fc.array(fc.tuple(fc.nat(), fc.nat(255), fc.constantFrom('flip', 'cut', 'insert')), { minLength: 1, maxLength: 4 }))
    .map(([frame, edits]) => {
      let bytes = Array.from(frame)
      for (const [pos, value, op] of edits) {
        const i = pos % Math.max(1, bytes.length)
        if (op === 'flip') bytes[i] = value
        else if (op === 'cut') bytes = bytes.slice(0, i)
        else bytes.splice(i, 0, value)
      }
      return Uint8Array.from(bytes.length > 0 ? bytes : [0xc1])
    })
  const wrongDirection = fc.integer({ min: 1, max: 50 }).chain(id => fc.constantFrom(
    encodeRpcFrame({ t: 'result', id, body: new Uint8Array(3) }),
    encodeRpcFrame({ t: 'failure', id, kind: FailureKind.Handler, name: 'E', code: '', message: 'm' })
  ))
  return fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 256 }), mutated, wrongDirection, request)
}

t.test('fuzzed frames from a member: no crash, every frame answered or counted, broken framing costs only the stream', async t => {
  const [target, caller] = await nodes(t, ['target', 'caller'])
  target.rpc.handle('echo', async body => body)
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-rpc-mallory-'))
  const mallory = await createMeshNode({ nodeId: 'mallory', clusterName: 'rpc-test', appVersion: '1', secret: SECRET, dataDir: root, bootstrap: [target.mesh.multiaddrs[0]] })
  t.teardown(async () => {
    await mallory.stop()
    await rm(root, { recursive: true, force: true })
  })
  await until('mallory is a member of target', () => target.mesh.membership.isAlive('mallory'))

  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000)
  t.comment(`fuzz seed ${seed}; replay with FUZZ_SEED=${seed} npx tap test/rpc.test.ts`)
  const frames = fc.sample(hostileFrames(), { numRuns: 5000, seed })
  const before = target.rpc.stats()
  const stream = await mallory.libp2p.dialProtocol(target.mesh.libp2p.peerId, RPC_PROTOCOL)
  stream.addEventListener('message', () => {})
  for (let i = 0; i < frames.length; i += 250) {
    const chunk = Buffer.concat(frames.slice(i, i + 250).map(lengthPrefixed))
    if (!stream.send(chunk)) await stream.onDrain()
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  const accounted = (): number => {
    const s = target.rpc.stats()
    return (s.badFrames - before.badFrames) + (s.unknownMethod - before.unknownMethod) + (s.busy - before.busy) + (s.cancels - before.cancels) +
      (s.served - before.served)
  }
  await until('every frame answered or counted as bad', () => accounted() === frames.length)
  const s = target.rpc.stats()
  t.ok(s.badFrames - before.badFrames > frames.length / 2, `most were bad: ${s.badFrames - before.badFrames} of ${frames.length}`)
  t.equal(stream.status, 'open', 'bad frames cost the frame, not the stream')

  const bad = await mallory.libp2p.dialProtocol(target.mesh.libp2p.peerId, RPC_PROTOCOL)
  bad.send(uvarint(2 ** 40))
  await until('the stream with broken framing is aborted', () => bad.status !== 'open')
  t.equal(target.rpc.stats().badFrames, s.badFrames + 1, 'broken framing is counted and its stream aborted')

  t.ok(equals(await caller.rpc.call('target', 'echo', fromString('fine')), fromString('fine')), 'the target still serves members')
})
