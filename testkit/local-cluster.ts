/**
 * Test kit (imported by test/, bench/ and examples/, which import nothing
 * of each other): runs kv-node processes on 127.0.0.1 (or each in a network
 * namespace, see `placement`), each with its own ports and data
 * directory, and lets a caller kill, pause, resume and restart them. Used by
 * the multi-process tests and the kv benchmark; `freePort` by every
 * launcher in testkit/. Children are
 * spawned with an IPC channel so they exit when this process dies.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes, randomInt } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { silentLogger } from '../gossip/logger.js'
import { loadOrCreatePeerKey } from '../gossip/peer-key.js'
import { KvClient } from './kv-client.js'
import { LOOPBACK, placedCommand, type Placement } from './placement.js'
import { TS_IMPORT } from './ts-import.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const kvNode = join(root, 'examples', 'kv-node.ts')

export interface LocalNode {
  readonly id: string
  readonly http: string
  readonly listen: string
  readonly dataDir: string
  readonly placement: Placement
  /** Created before the first start (the node keeps its key in dataDir), so bootstrap addresses can name it. */
  readonly peerId: string
  proc: ChildProcess | null
  /** The last lines the process wrote to stderr, for diagnostics. */
  readonly stderr: string[]
}

export interface LocalClusterOptions {
  readonly nodes: number
  /** Raft tick in ms (kv-node --tick-ms). */
  readonly tickMs?: number
  /** Extra environment for every child. */
  readonly env?: Record<string, string>
  /** The source tree whose examples/kv-node.ts runs (a baseline revision in a benchmark). Default this one. */
  readonly root?: string
  /** Extra node flags, after `--import tsx` (e.g. another `--import`). */
  readonly nodeArgs?: readonly string[]
  /** Most HTTP requests the client keeps open to one node. Default KvClient's. */
  readonly clientSockets?: number
  /** Where node i (0-based) runs; default 127.0.0.1. A lab's namespaces need a link from here for `client`. */
  readonly placement?: (index: number) => Placement
}

/** Ports freePort already returned in this process. */
const handedOut = new Set<number>()

/**
 * A free TCP port on 127.0.0.1 for a child to listen on later. Picked below
 * the kernel's ephemeral range (32768+ on Linux, 49152+ elsewhere): a port
 * the kernel hands out with listen(0) can meanwhile become the local end of
 * an outgoing connection, and the child (or a restarted one) then fails
 * with EADDRINUSE, as a benchmark run here once did. A port is handed out
 * once per process, so two nodes never get the same one; etcd in the
 * benchmark listens on 23790-23795, below the range.
 */
export async function freePort (): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = randomInt(24_000, 32_000)
    const free = !handedOut.has(port) && await new Promise<boolean>(resolve => {
      const srv = createServer()
      srv.once('error', () => { resolve(false) })
      srv.listen(port, '127.0.0.1', () => { srv.close(() => { resolve(true) }) })
    })
    if (free) {
      handedOut.add(port)
      return port
    }
    if (attempt === 50) throw new Error('no free TCP port in 24000-31999 on 127.0.0.1 after 50 tries')
  }
}

export class LocalKvCluster {
  readonly nodes: LocalNode[]
  readonly client: KvClient
  private readonly secret = randomBytes(24).toString('hex')
  private stopped = false

  private constructor (readonly dir: string, nodes: LocalNode[], private readonly opts: LocalClusterOptions) {
    this.nodes = nodes
    this.client = new KvClient(() => this.nodes.filter(n => n.proc !== null).map(n => n.http), { maxSockets: opts.clientSockets })
  }

  static async start (opts: LocalClusterOptions): Promise<LocalKvCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'raftmesh-local-'))
    const nodes: LocalNode[] = []
    for (let i = 1; i <= opts.nodes; i++) {
      const dataDir = join(dir, `n${i}`)
      const peerId = peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir, silentLogger)).toString()
      const placement = opts.placement?.(i - 1) ?? LOOPBACK
      nodes.push({ id: `n${i}`, http: `${placement.host}:${await freePort()}`, listen: `/ip4/${placement.host}/tcp/${await freePort()}`, dataDir, placement, peerId, proc: null, stderr: [] })
    }
    const cluster = new LocalKvCluster(dir, nodes, opts)
    try {
      await Promise.all(nodes.map(async n => { await cluster.launch(n) }))
    } catch (err) {
      await cluster.stop()
      throw err
    }
    return cluster
  }

  node (id: string): LocalNode {
    const n = this.nodes.find(x => x.id === id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  /** Starts a node's process and resolves when it reports ready. */
  async launch (n: LocalNode): Promise<void> {
    // Every other node, as a deployment lists them. With one bootstrap peer
    // each, a node whose only peer started late had backed off its redials
    // to seconds, never joined before that peer was killed, and then knew
    // no one else: the cluster had no quorum (CI, stop 28). Addresses name
    // the peer id, so two nodes that dial each other at once keep one connection.
    const others = this.nodes.filter(x => x !== n).map(x => `${x.listen}/p2p/${x.peerId}`)
    const args = [
      // A larger young generation halves the scavenges under load (measured: 19 -> 9-10 on the leader per 3,000 PUTs, p99 down ~20%).
      '--max-semi-space-size=32',
      ...TS_IMPORT, ...this.opts.nodeArgs ?? [], this.opts.root === undefined ? kvNode : join(this.opts.root, 'examples', 'kv-node.ts'),
      '--id', n.id, '--data-dir', n.dataDir, '--http', n.http, '--listen', n.listen,
      '--bootstrap', others.join(','), '--voters', this.nodes.map(x => x.id).join(','),
      '--secret', this.secret, '--tick-ms', String(this.opts.tickMs ?? 50)
    ]
    const [cmd, argv] = placedCommand(n.placement, process.execPath, args)
    const proc = spawn(cmd, argv, { cwd: this.opts.root ?? root, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: { ...process.env, ...this.opts.env } })
    n.proc = proc
    proc.stderr?.setEncoding('utf8').on('data', (s: string) => {
      n.stderr.push(...s.split('\n').filter(l => l.length > 0))
      if (n.stderr.length > 20) n.stderr.splice(0, n.stderr.length - 20)
    })
    proc.on('exit', () => { if (n.proc === proc) n.proc = null })
    await new Promise<void>((resolve, reject) => {
      let out = ''
      const onData = (s: string): void => {
        out += s
        // Only whole lines: the last piece may still be arriving.
        const line = out.split('\n').slice(0, -1).find(l => l.includes('"event":"ready"'))
        if (line === undefined) return
        proc.stdout?.off('data', onData)
        const ready = JSON.parse(line) as { peerId?: unknown }
        // The other nodes' bootstrap addresses name this id: a different one would leave them unable to dial it.
        if (ready.peerId === n.peerId) resolve()
        else reject(new Error(`${n.id} started as peer ${String(ready.peerId)}, not ${n.peerId} from the key created in ${n.dataDir}`))
      }
      proc.stdout?.setEncoding('utf8').on('data', onData)
      proc.once('exit', code => { reject(new Error(`${n.id} exited with ${String(code)} before it was ready: ${n.stderr.join(' | ')}`)) })
    })
  }

  /** host:port of every running node. */
  httpAddrs (): string[] {
    return this.nodes.filter(n => n.proc !== null).map(n => n.http)
  }

  /** A node's /status, or null when it does not answer. */
  async status (n: LocalNode): Promise<any | null> {
    if (n.proc === null) return null
    try {
      const r = await this.client.raw(n.http, 'GET', '/status', undefined, 1000)
      return r.status === 200 ? r.body : null
    } catch {
      return null
    }
  }

  /** Waits until some running node reports itself leader; returns it. */
  async waitForLeader (timeoutMs = 20_000): Promise<LocalNode> {
    const end = Date.now() + timeoutMs
    for (;;) {
      for (const n of this.nodes) {
        const s = await this.status(n)
        if (s?.role === 'leader') return n
      }
      if (Date.now() > end) throw new Error(`no leader within ${timeoutMs} ms`)
      await new Promise(resolve => setTimeout(resolve, 25))
    }
  }

  /** Waits until every running node reports every other running node reachable. */
  async waitForMesh (timeoutMs = 20_000): Promise<void> {
    const end = Date.now() + timeoutMs
    for (;;) {
      const running = this.nodes.filter(n => n.proc !== null)
      const ids = new Set(running.map(n => n.id))
      const statuses = await Promise.all(running.map(async n => await this.status(n)))
      const meshed = statuses.every(s => s !== null && [...ids].every(id => s.members.some((m: { id: string, reachable: boolean }) => m.id === id && m.reachable)))
      if (meshed) return
      if (Date.now() > end) throw new Error(`the nodes did not all reach each other within ${timeoutMs} ms: ${JSON.stringify(statuses)}`)
      await new Promise(resolve => setTimeout(resolve, 25))
    }
  }

  signal (n: LocalNode, sig: NodeJS.Signals): void {
    n.proc?.kill(sig)
  }

  /** SIGKILLs a node and waits for the process to be gone. */
  async kill (n: LocalNode): Promise<void> {
    const p = n.proc
    if (p === null) return
    const gone = new Promise(resolve => p.once('exit', resolve))
    p.kill('SIGKILL')
    await gone
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const n of this.nodes) {
      if (n.proc !== null) n.proc.kill('SIGCONT')
      await this.kill(n)
    }
    this.client.close()
    await rm(this.dir, { recursive: true, force: true })
  }
}
