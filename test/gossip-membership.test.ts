/**
 * Membership over real libp2p: joins, a clean leave, a crashed process
 * (SIGKILL) and a paused one (SIGSTOP), plus the view's rules on a fake
 * clock and the redial backoff table.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { backoffMs, peerIdOfAddr } from '../gossip/dialer.js'
import { silentLogger } from '../gossip/logger.js'
import { Membership, type Member } from '../gossip/membership.js'
import { createMeshNode, type MeshNode, type MeshNodeOptions } from '../gossip/node.js'
import { TS_IMPORT } from '../testkit/ts-import.js'

const SECRET = 'a cluster secret of some length'
const FIXTURE = fileURLToPath(new URL('./fixtures/mesh-node.ts', import.meta.url))
const ROOT_DIR = fileURLToPath(new URL('..', import.meta.url))

async function until (what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/** The next `event` about node `nodeId`, within `ms`. */
async function nextEvent (mesh: MeshNode, event: 'join' | 'leave' | 'failed', nodeId: string, ms = 10_000): Promise<Member> {
  return await new Promise<Member>((resolve, reject) => {
    const timer = setTimeout(() => {
      mesh.membership.off(event, on)
      reject(new Error(`no ${event} of ${nodeId} within ${ms} ms`))
    }, ms)
    const on = (m: Member): void => {
      if (m.nodeId !== nodeId) return
      clearTimeout(timer)
      mesh.membership.off(event, on)
      resolve(m)
    }
    mesh.membership.on(event, on)
  })
}

interface Child { proc: ChildProcess, peerId: string }

async function spawnNode (opts: MeshNodeOptions): Promise<Child> {
  const proc = spawn(process.execPath, [...TS_IMPORT, FIXTURE, JSON.stringify(opts)], {
    cwd: ROOT_DIR,
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream })
  const [line] = await once(lines, 'line', { signal: AbortSignal.timeout(20_000) }) as [string]
  lines.close()
  return { proc, peerId: (JSON.parse(line) as { peerId: string }).peerId }
}

t.test('membership view rules (fake clock)', async t => {
  let now = 1000
  const view = new Membership({ clock: () => now, logger: silentLogger })
  const events: string[] = []
  view.on('join', m => events.push(`join ${m.nodeId}`))
  view.on('leave', m => events.push(`leave ${m.nodeId}`))
  view.on('failed', m => events.push(`failed ${m.nodeId}: ${m.failure}`))
  view.admit({ nodeId: 'n2', peerId: 'P2', addresses: ['/a'], appVersion: '1' }, 'c1')
  view.admit({ nodeId: 'n2', peerId: 'P2', addresses: ['/a'], appVersion: '1' }, 'c2')
  t.same(events, ['join n2'], 'a second connection of a live member is no new join')
  t.equal(view.get('n2')?.joinedAt, 1000)
  now = 1500
  view.touch('n2')
  t.equal(view.get('n2')?.lastSeen, 1500, 'last seen follows the injected clock')
  t.equal(view.nodeIdOfPeer('P2'), 'n2')
  t.not(view.conflictFor('n2', 'P9'), null, 'another peer may not take a live node id')
  view.connectionClosed('c1', 'reset')
  t.equal(view.get('n2')?.state, 'alive', 'alive while one connection remains')
  now = 2000
  view.connectionClosed('c2', 'connection closed without a goodbye')
  t.match(view.get('n2'), { state: 'failed', downSince: 2000, failure: 'connection closed without a goodbye' })
  t.equal(view.nodeIdOfPeer('P2'), null, 'a failed member is no longer trusted')
  t.equal(view.conflictFor('n2', 'P9'), null, 'a failed node id may be taken over')
  view.admit({ nodeId: 'n2', peerId: 'P2', addresses: ['/a'], appVersion: '1' }, 'c3')
  view.goodbye('P2')
  view.connectionClosed('c3', 'closed')
  t.same(events, ['join n2', 'failed n2: connection closed without a goodbye', 'join n2', 'leave n2'], 'bye then close is a leave, not a failure')
  t.same(view.alive(), [])
  t.equal(view.list().length, 1, 'the view remembers members that went away')
})

t.test('redial backoff doubles, caps and jitters into [50%, 100%]', async t => {
  t.same([0, 1, 2, 3, 10].map(a => backoffMs(a, 100, 5000, 1)), [100, 200, 400, 800, 5000])
  t.same([0, 1, 10].map(a => backoffMs(a, 100, 5000, 0)), [50, 100, 2500])
  t.equal(peerIdOfAddr('/ip4/127.0.0.1/tcp/1/p2p/12D3KooWabc'), '12D3KooWabc')
  t.equal(peerIdOfAddr('/ip4/127.0.0.1/tcp/1'), null)
})

t.test('membership over real connections', async t => {
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-membership-'))
  const nodes: MeshNode[] = []
  const children: ChildProcess[] = []
  t.teardown(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGCONT')
        c.kill('SIGKILL')
      }
    }
    for (const n of nodes) await n.stop()
    await rm(root, { recursive: true, force: true })
  })
  const base = { clusterName: 'alpha', appVersion: '1.0.0', secret: SECRET }
  const a = await createMeshNode({ ...base, nodeId: 'n1', dataDir: join(root, 'n1') })
  nodes.push(a)
  const bootstrap = [a.multiaddrs[0]]

  t.test('nodes that pass the handshake join, and a clean stop is a leave', async t => {
    const joins = [nextEvent(a, 'join', 'n2'), nextEvent(a, 'join', 'n3')]
    const b = await createMeshNode({ ...base, nodeId: 'n2', dataDir: join(root, 'n2'), bootstrap })
    const c = await createMeshNode({ ...base, nodeId: 'n3', dataDir: join(root, 'n3'), bootstrap })
    nodes.push(b, c)
    const [jb, jc] = await Promise.all(joins)
    t.match(jb, { nodeId: 'n2', peerId: b.peerId, appVersion: '1.0.0', state: 'alive' })
    t.match(jc, { nodeId: 'n3', peerId: c.peerId, state: 'alive' })
    await until('n2 sees n1', () => b.membership.isAlive('n1'))
    await until('n2 and n3 find each other through n1\'s peer list', () => b.membership.isAlive('n3') && c.membership.isAlive('n2'))
    t.pass('the mesh is complete although both bootstrapped only through n1')
    const leave = nextEvent(a, 'leave', 'n3')
    await c.stop()
    nodes.splice(nodes.indexOf(c), 1)
    const left = await leave
    t.equal(left.state, 'left', 'a clean stop is a leave')
    t.equal(left.failure, null)
    t.same(a.members().map(m => m.nodeId), ['n2'])
    await b.stop()
    nodes.splice(nodes.indexOf(b), 1)
  })

  t.test('a node stopped the moment a peer admits it still leaves cleanly (its handshake finishes first)', async t => {
    const failed: string[] = []
    const onFailed = (m: Member): void => { if (m.nodeId.startsWith('h')) failed.push(`${m.nodeId}: ${String(m.failure)}`) }
    a.membership.on('failed', onFailed)
    t.teardown(() => { a.membership.off('failed', onFailed) })
    for (let i = 1; i <= 5; i++) {
      const id = `h${i}`
      const h = await createMeshNode({ ...base, nodeId: id, dataDir: join(root, id) })
      const left = nextEvent(a, 'leave', id)
      let stopping: Promise<void> = Promise.resolve()
      // n1 dials, so n1 admits h as soon as it sends its verdict, one hop
      // before h reads that verdict and admits n1: h is stopped in between.
      const onJoin = (m: Member): void => {
        if (m.nodeId !== id) return
        a.membership.off('join', onJoin)
        stopping = h.stop()
      }
      a.membership.on('join', onJoin)
      await a.dial(h.multiaddrs[0]).catch(() => {})
      await left
      await stopping
    }
    t.same(failed, [], 'every stop was a leave, none a failure')
  })

  t.test('with mDNS on, nodes find each other without a bootstrap list', async t => {
    // A cluster name of its own: mDNS is scoped by it, and other test files may run at the same time.
    const cluster = `mdns-${process.pid}`
    const x = await createMeshNode({ ...base, clusterName: cluster, nodeId: 'm1', dataDir: join(root, 'm1'), mdns: { intervalMs: 500 } })
    const y = await createMeshNode({ ...base, clusterName: cluster, nodeId: 'm2', dataDir: join(root, 'm2'), mdns: { intervalMs: 500 } })
    nodes.push(x, y)
    await until('m1 and m2 discovered each other', () => x.membership.isAlive('m2') && y.membership.isAlive('m1'))
    t.pass('joined through mDNS discovery')
    for (const n of [x, y]) {
      await n.stop()
      nodes.splice(nodes.indexOf(n), 1)
    }
  })

  /** A mesh node in a child process, once n1 has admitted it. */
  const spawnJoined = async (nodeId: string): Promise<Child> => {
    const joined = nextEvent(a, 'join', nodeId, 20_000)
    const child = await spawnNode({ ...base, nodeId, dataDir: join(root, nodeId), bootstrap })
    children.push(child.proc)
    await joined
    return child
  }

  t.test('a stopping node closes its connections only once each member has recorded its leave', async t => {
    const child = await spawnJoined('b1')
    const left = nextEvent(a, 'leave', 'b1')
    const lines = createInterface({ input: child.proc.stdout as NodeJS.ReadableStream })
    const stopped = once(lines, 'line', { signal: AbortSignal.timeout(20_000) })
    child.proc.kill('SIGTERM')
    // n1 reads nothing for a while: b1's bye waits in the socket, unanswered.
    const busyUntil = Date.now() + 500
    while (Date.now() < busyUntil);
    t.equal((await left).state, 'left')
    const [line] = await stopped as [string]
    lines.close()
    const { stoppedAt } = JSON.parse(line) as { stoppedAt: number }
    t.ok(stoppedAt >= busyUntil, `b1 finished stopping ${stoppedAt - busyUntil} ms after n1 could first read its bye`)
  })

  t.test('a SIGKILLed process fails quickly (closed connection)', async t => {
    const child = await spawnJoined('k1')
    const failed = nextEvent(a, 'failed', 'k1', 5000)
    const t0 = Date.now()
    child.proc.kill('SIGKILL')
    const m = await failed
    t.equal(m.state, 'failed')
    t.equal(m.peerId, child.peerId)
    t.comment(`SIGKILL seen as failed after ${Date.now() - t0} ms: ${m.failure}`)
  })

  t.test('a SIGSTOPped process fails by ping timeout, and rejoins after SIGCONT', async t => {
    const child = await spawnJoined('p1')
    const failed = nextEvent(a, 'failed', 'p1', 10_000)
    const t0 = Date.now()
    child.proc.kill('SIGSTOP')
    const m = await failed
    t.equal(m.state, 'failed')
    t.comment(`SIGSTOP seen as failed after ${Date.now() - t0} ms: ${m.failure}`)
    const rejoined = nextEvent(a, 'join', 'p1', 20_000)
    child.proc.kill('SIGCONT')
    await rejoined
    t.pass('the resumed process rejoins (redial with backoff)')
    const left = nextEvent(a, 'leave', 'p1', 10_000)
    child.proc.kill('SIGTERM')
    await left
    t.pass('SIGTERM makes it leave cleanly')
  })
})
