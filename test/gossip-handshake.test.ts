/**
 * The join handshake over real libp2p on 127.0.0.1: who gets in, who is
 * refused, and what each side is told.
 */
import { once } from 'node:events'
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ClusterMismatchError, HandshakeError, InvalidArgumentError, NodeIdConflictError, PeerKeyError, VersionMismatchError } from '../gossip/errors.js'
import type { FrameStream } from '../gossip/frame-stream.js'
import { compareHello, decodeControl, decodeHello, encodeHello, PROTOCOL_VERSION, type Hello } from '../gossip/handshake.js'
import { createMeshNode, type MeshNode, type MeshNodeOptions } from '../gossip/node.js'
import { Packr } from 'msgpackr'
import { PEER_KEY_FILE } from '../gossip/peer-key.js'

const SECRET = 'a cluster secret of some length'

async function until (what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** The next `error` event of a node, within a generous deadline. */
async function nextError (node: MeshNode): Promise<HandshakeError> {
  const [err] = await once(node, 'error', { signal: AbortSignal.timeout(10_000) })
  return err as HandshakeError
}

t.test('hello frames are validated, and compared cluster first', async t => {
  const local: Hello = { cluster: 'alpha', protocol: 1, app: '2.8.0', node: 'n1', addrs: [], meta: { http: 'http://127.0.0.1:8080' } }
  const pack = (v: unknown): Uint8Array => new Packr({ useRecords: false }).pack(v)
  t.same(decodeHello(encodeHello({ ...local, node: 'n2' }), 'P'), { ...local, node: 'n2' })
  t.same(decodeHello(pack({ t: 'hello', cluster: 'alpha', protocol: 7, app: '3', node: 'n9', future: true }), 'P').protocol, 7,
    'a hello from a future protocol version still parses, so the mismatch can be reported')
  t.throws(() => decodeHello(Uint8Array.of(0xc1), 'P'), HandshakeError, 'not msgpack')
  t.throws(() => decodeHello(pack({ t: 'hello', cluster: 'a', protocol: 1, app: '1', node: 'n2', meta: { k: 1 } }), 'P'), HandshakeError, 'metadata values are strings')
  t.throws(() => decodeHello(pack({ t: 'hello', cluster: '', protocol: 1, app: '1', node: 'n2' }), 'P'), HandshakeError, 'empty cluster name')
  t.throws(() => decodeHello(pack({ t: 'hello', cluster: 'a', protocol: -1, app: '1', node: 'n2' }), 'P'), HandshakeError, 'negative protocol')
  t.throws(() => decodeHello(pack({ t: 'hello', cluster: 'a', protocol: 1, app: 'x'.repeat(65), node: 'n2' }), 'P'), HandshakeError, 'app version too long')
  t.throws(() => decodeControl(pack({ t: 'peers', peers: [{ id: 'x', addrs: [], extra: 1 }] }), 'P'), HandshakeError, 'control frames are strict')
  t.type(compareHello(local, { ...local, cluster: 'beta', app: '9' }, 'P'), ClusterMismatchError, 'cluster is checked before versions')
  t.equal(compareHello(local, { ...local, node: 'n2' }, 'P'), null, 'a matching peer is accepted')
  t.type(compareHello(local, local, 'P'), NodeIdConflictError, 'a peer may not claim our own node id')
})

t.test('handshake', async t => {
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-handshake-'))
  const nodes: MeshNode[] = []
  t.teardown(async () => {
    for (const n of nodes) await n.stop()
    await rm(root, { recursive: true, force: true })
  })
  let dirs = 0
  async function start (opts: Partial<MeshNodeOptions> & { nodeId: string }): Promise<MeshNode> {
    const n = await createMeshNode({ clusterName: 'alpha', appVersion: '2.8.0', secret: SECRET, dataDir: join(root, `d${++dirs}`), ...opts })
    nodes.push(n)
    return n
  }
  async function stop (...ns: MeshNode[]): Promise<void> {
    for (const n of ns) {
      await n.stop()
      nodes.splice(nodes.indexOf(n), 1)
    }
  }

  t.test('nodes with the same cluster, secret and versions join each other', async t => {
    const a = await start({ nodeId: 'n1', meta: { http: 'http://127.0.0.1:8081' } })
    const b = await start({ nodeId: 'n2', bootstrap: [a.multiaddrs[0]] })
    await until('both see each other', () => a.members().length === 1 && b.members().length === 1)
    t.same(b.members()[0].meta, { http: 'http://127.0.0.1:8081' }, 'application metadata travels with the hello')
    t.same(a.members()[0].meta, {})
    t.equal(a.members()[0].nodeId, 'n2')
    t.equal(a.members()[0].peerId, b.peerId)
    t.equal(a.members()[0].appVersion, '2.8.0')
    t.equal(b.members()[0].nodeId, 'n1')
    t.ok(b.members()[0].addresses.includes(a.multiaddrs[0]), 'a member announces its listen addresses')
    await stop(a, b)
  })

  t.test('a node with the wrong secret cannot connect at all', async t => {
    const a = await start({ nodeId: 'n1' })
    const b = await start({ nodeId: 'n2', secret: 'a different secret, also long', bootstrap: [a.multiaddrs[0]] })
    await t.rejects(b.dial(a.multiaddrs[0]), 'a direct dial fails in the private-network exchange')
    await sleep(1000)
    t.equal(a.members().length, 0, 'no member on the listener')
    t.equal(b.members().length, 0, 'no member on the dialer')
    t.equal(a.libp2p.getConnections().length, 0, 'no connection survives')
    await stop(a, b)
  })

  t.test('a node of another cluster is refused, and both sides name both clusters', async t => {
    const a = await start({ nodeId: 'n1' })
    const aErr = nextError(a)
    const b = await start({ nodeId: 'n2', clusterName: 'beta', bootstrap: [a.multiaddrs[0]] })
    const bErr = nextError(b)
    const [ea, eb] = await Promise.all([aErr, bErr])
    t.type(ea, ClusterMismatchError)
    t.type(eb, ClusterMismatchError)
    t.equal(ea.message, 'peer n2 belongs to cluster "beta", this node belongs to cluster "alpha"')
    t.equal(eb.message, 'peer n1 belongs to cluster "alpha", this node belongs to cluster "beta"')
    t.equal(ea.code, 'ERR_CLUSTER_MISMATCH')
    t.equal(ea.peerId, b.peerId, 'the error carries the peer id')
    await sleep(300)
    t.equal(a.members().length + b.members().length, 0, 'nobody became a member')
    await until('the connection is closed', () => a.libp2p.getConnections(b.libp2p.peerId).length === 0)
    await stop(a, b)
  })

  t.test('an app version mismatch is refused with both versions named on both sides', async t => {
    const a = await start({ nodeId: 'n1', appVersion: '2.8.0' })
    const aErr = nextError(a)
    const b = await start({ nodeId: 'n2', appVersion: '2.8.1', bootstrap: [a.multiaddrs[0]] })
    const [ea, eb] = await Promise.all([aErr, nextError(b)])
    t.type(ea, VersionMismatchError)
    t.equal(String(ea), 'VersionMismatchError: peer n2 runs app 2.8.1, this cluster runs 2.8.0')
    t.equal(String(eb), 'VersionMismatchError: peer n1 runs app 2.8.0, this cluster runs 2.8.1')
    t.match(ea, { name: 'VersionMismatchError', code: 'ERR_VERSION_MISMATCH', kind: 'app', local: '2.8.0', remote: '2.8.1', peer: 'n2' })
    await sleep(300)
    t.equal(a.members().length + b.members().length, 0, 'nobody became a member')
    await until('the connection is closed', () => a.libp2p.getConnections().length === 0)
    await stop(a, b)
  })

  t.test('a raftmesh protocol version mismatch is refused', async t => {
    const a = await start({ nodeId: 'n1' })
    const aErr = nextError(a)
    const next = PROTOCOL_VERSION + 1
    const b = await start({ nodeId: 'n2', protocolVersion: next, bootstrap: [a.multiaddrs[0]] })
    const [ea, eb] = await Promise.all([aErr, nextError(b)])
    t.equal(String(ea), `VersionMismatchError: peer n2 speaks raftmesh protocol ${next}, this cluster speaks ${PROTOCOL_VERSION}`)
    t.equal(String(eb), `VersionMismatchError: peer n1 speaks raftmesh protocol ${PROTOCOL_VERSION}, this cluster speaks ${next}`)
    t.equal((ea as VersionMismatchError).kind, 'protocol')
    t.equal(a.members().length, 0)
    await stop(a, b)
  })

  t.test('a second live node claiming a taken node id is refused', async t => {
    const a = await start({ nodeId: 'n1' })
    const b = await start({ nodeId: 'n2', bootstrap: [a.multiaddrs[0]] })
    await until('n2 joined', () => a.members().length === 1)
    const aErr = nextError(a)
    const c = await start({ nodeId: 'n2', bootstrap: [a.multiaddrs[0]] })
    const cErr = nextError(c)
    const [ea, ec] = await Promise.all([aErr, cErr])
    t.type(ea, NodeIdConflictError)
    t.match(ea.message, `node id n2 is already used by live peer ${b.peerId}`)
    t.type(ec, NodeIdConflictError, 'the refused node is told why')
    t.match(ec.message, /refused this node/)
    t.same(a.members().map(m => m.peerId), [b.peerId], 'the original holder keeps the id')
    await stop(a, b, c)
  })

  t.test('a bad frame on a member\'s control stream is dropped and counted; the member stays', async t => {
    const a = await start({ nodeId: 'n1' })
    const b = await start({ nodeId: 'n2', bootstrap: [a.multiaddrs[0]] })
    await until('both see each other', () => a.members().length === 1 && b.members().length === 1)
    // b's side of the connection's control stream (private: no API writes raw frames on it).
    const controls = (b as unknown as { admission: { controls: Map<string, FrameStream> } }).admission.controls
    const control = [...controls.values()][0]
    for (const frame of [Uint8Array.of(0xc1), new Packr().pack({ t: 'peers', peers: 'all' })]) await control.write(frame)
    await until('a counted both', () => a.badControlFrames === 2)
    t.equal(a.badControlFrames, 2, 'two bad control frames counted')
    t.equal(a.members().length, 1, 'b is still a member')
    await stop(a, b)
  })

  t.test('no secret is a startup error unless insecure is explicit', async t => {
    await t.rejects(createMeshNode({ nodeId: 'n1', clusterName: 'alpha', appVersion: '1', dataDir: join(root, 'nosecret') }),
      { name: 'InvalidArgumentError', code: 'ERR_INVALID_ARGUMENT', message: /no cluster secret/ })
    await t.rejects(createMeshNode({ nodeId: 'n1', clusterName: 'alpha', appVersion: '1', dataDir: join(root, 'short'), secret: 'short' }),
      InvalidArgumentError, 'a short secret is refused')
    await t.rejects(createMeshNode({ nodeId: '', clusterName: 'alpha', appVersion: '1', dataDir: join(root, 'x'), secret: SECRET }), InvalidArgumentError)
    await t.rejects(createMeshNode({ nodeId: 'n1', clusterName: 'alpha', appVersion: '1', dataDir: join(root, 'x'), secret: SECRET, meta: { big: 'x'.repeat(2000) } }), InvalidArgumentError)
    await t.rejects(createMeshNode({ nodeId: 'n1', clusterName: 'alpha', appVersion: '1', dataDir: join(root, 'x'), secret: SECRET, meta: JSON.parse('{"__proto__":"x"}') }),
      InvalidArgumentError, 'a __proto__ metadata key is refused: peers would decode it as __proto_')
    const a = await start({ nodeId: 'n1', secret: undefined, insecure: true })
    const b = await start({ nodeId: 'n2', secret: undefined, insecure: true, bootstrap: [a.multiaddrs[0]] })
    await until('insecure nodes join', () => a.members().length === 1)
    t.pass('insecure: true runs without a private network')
    await stop(a, b)
  })

  t.test('the peer id survives a restart with the same data dir', async t => {
    const dir = join(root, 'persistent')
    const first = await start({ nodeId: 'n1', dataDir: dir })
    const id = first.peerId
    await stop(first)
    t.equal(((await stat(join(dir, PEER_KEY_FILE))).mode & 0o777), 0o600, 'the key file is private')
    const second = await start({ nodeId: 'n1', dataDir: dir })
    t.equal(second.peerId, id, 'same peer id after restart')
    await stop(second)
    const other = await start({ nodeId: 'n1' })
    t.not(other.peerId, id, 'another data dir has another identity')
    await stop(other)
    await mkdir(join(root, 'bad-key'))
    await writeFile(join(root, 'bad-key', PEER_KEY_FILE), 'not a key')
    await t.rejects(start({ nodeId: 'n1', dataDir: join(root, 'bad-key') }), PeerKeyError, 'a corrupt key file is an error, never replaced')
  })
})
