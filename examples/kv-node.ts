/**
 * One process, one node: a Raft replicated key-value store over the libp2p
 * mesh with an HTTP API on its own port. See `--help`.
 *
 *   node --import tsx examples/kv-node.ts --id n1 --data-dir /tmp/n1 \
 *     --http 127.0.0.1:8001 --listen /ip4/127.0.0.1/tcp/9001 --voters n1,n2,n3 --secret s3cret-s3cret-s3cret
 */
import { Command, InvalidArgumentError as CommanderArgError, Option } from 'commander'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createMeshNode, type MeshNode } from '../gossip/node.js'
import { Libp2pRaftTransport } from '../gossip/raft-transport.js'
import { FileLogStore, RaftNode } from '../raft/index.js'
import { createKvHttpServer } from './kv/kv-http.js'
import { KvState, type KvApplyResult } from './kv/kv-state.js'

interface Flags {
  id: string
  dataDir: string
  listen: string
  http: string
  bootstrap: string[]
  voters: string[]
  secret?: string
  insecure: boolean
  cluster: string
  appVersion: string
  tickMs: number
  fsync: 'inline' | 'threadpool'
}

const list = (v: string): string[] => v.split(',').map(s => s.trim()).filter(s => s.length > 0)
const hostPort = (v: string): string => {
  if (!/^[\w.-]+:\d{1,5}$/.test(v)) throw new CommanderArgError('expected host:port, e.g. 127.0.0.1:8001')
  return v
}
const positiveInt = (v: string): number => {
  const n = Number(v)
  if (!Number.isInteger(n) || n <= 0) throw new CommanderArgError('expected a positive integer')
  return n
}

function parseFlags (argv: string[]): Flags {
  const program = new Command()
    .name('kv-node')
    .description('A raftmesh node serving a replicated key-value store over HTTP')
    .addOption(new Option('--id <id>', 'this node\'s id (unique in the cluster)').env('RAFTMESH_ID').makeOptionMandatory())
    .addOption(new Option('--data-dir <dir>', 'where the Raft log, snapshots and peer key live').env('RAFTMESH_DATA_DIR').makeOptionMandatory())
    .addOption(new Option('--http <host:port>', 'HTTP API address').env('RAFTMESH_HTTP').argParser(hostPort).makeOptionMandatory())
    .addOption(new Option('--listen <multiaddr>', 'libp2p listen address').env('RAFTMESH_LISTEN').default('/ip4/127.0.0.1/tcp/0'))
    .addOption(new Option('--bootstrap <multiaddrs>', 'comma-separated peers to join through').env('RAFTMESH_BOOTSTRAP').argParser(list).default([]))
    .addOption(new Option('--voters <ids>', 'comma-separated ids of the initial voters (same on every node)').env('RAFTMESH_VOTERS').argParser(list).default([]))
    .addOption(new Option('--secret <secret>', 'cluster secret (16+ characters) for the private network').env('RAFTMESH_SECRET'))
    .addOption(new Option('--insecure', 'run without a private network (local development only)').env('RAFTMESH_INSECURE').default(false))
    .addOption(new Option('--cluster <name>', 'cluster name; peers with another are refused').env('RAFTMESH_CLUSTER').default('raftmesh-kv'))
    .addOption(new Option('--app-version <version>', 'application version; must match on every node').env('RAFTMESH_APP_VERSION').default('1.0.0'))
    .addOption(new Option('--fsync <where>', 'wait for the log\'s fdatasync on the event loop (inline: lower latency, for a process that only runs the node) or on a libuv thread').env('RAFTMESH_FSYNC').choices(['inline', 'threadpool']).default('inline'))
    .addOption(new Option('--tick-ms <ms>', 'Raft tick interval; heartbeats every 2 ticks, elections after 10-20 ticks').env('RAFTMESH_TICK_MS').argParser(positiveInt).default(50))
    .exitOverride()
    .configureOutput({ writeErr: s => { process.stderr.write(s.split('\n')[0] + '\n') } })
  program.parse(argv)
  return program.opts<Flags>()
}

function fatal (msg: string): never {
  process.stderr.write(`kv-node: ${msg}\n`)
  process.exit(2)
}

async function main (): Promise<void> {
  let flags: Flags
  try {
    flags = parseFlags(process.argv)
  } catch (err) {
    const code = (err as { exitCode?: number, code?: string }).code
    process.exit(code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : 2)
  }
  // Exit with the parent that spawned us (the local cluster runner), never outlive it.
  if (process.send !== undefined) process.on('disconnect', () => process.exit(0))

  await mkdir(join(flags.dataDir, 'raft'), { recursive: true })
  const state = new KvState()
  let mesh: MeshNode
  try {
    mesh = await createMeshNode({
      nodeId: flags.id,
      clusterName: flags.cluster,
      appVersion: flags.appVersion,
      dataDir: flags.dataDir,
      secret: flags.secret,
      insecure: flags.insecure,
      listen: [flags.listen],
      bootstrap: flags.bootstrap,
      meta: { http: flags.http }
    })
  } catch (err) {
    fatal((err as Error).message)
  }
  mesh.on('error', err => { process.stderr.write(`kv-node ${flags.id}: ${err.message}\n`) })
  const transport = await Libp2pRaftTransport.create(mesh)
  const raft = await RaftNode.start<KvApplyResult | null>({
    id: flags.id,
    store: new FileLogStore({ dir: join(flags.dataDir, 'raft'), fsync: flags.fsync }),
    transport,
    stateMachine: state,
    bootstrap: flags.voters.length > 0 ? flags.voters : undefined,
    tickMs: flags.tickMs,
    electionTick: 10,
    // Heartbeats every 100 ms by default, as etcd's: half the idle traffic of one per tick.
    heartbeatTick: 2,
    snapshotEvery: 20_000
  })
  raft.on('error', err => { fatal(`raft stopped: ${err.message}`) })
  mesh.membership.on('failed', m => { raft.reportUnreachable(m.nodeId) })

  const httpAddrOf = (nodeId: string): string | null => nodeId === flags.id ? flags.http : mesh.membership.get(nodeId)?.meta.http ?? null
  const status = (): unknown => {
    const s = raft.status()
    const alive = new Set(mesh.membership.alive().map(m => m.nodeId))
    const ids = [...new Set([...s.config.voters, ...s.config.learners])].sort()
    return {
      id: s.id,
      role: s.role,
      term: s.term,
      leader: s.leader,
      commitIndex: s.commitIndex,
      appliedIndex: s.appliedIndex,
      members: ids.map(id => {
        const p = s.progress[id]
        const matchIndex = id === s.id ? s.lastIndex : p?.match ?? null
        return {
          id,
          voter: s.config.voters.includes(id),
          reachable: id === s.id || alive.has(id),
          http: httpAddrOf(id),
          matchIndex,
          lag: matchIndex === null ? null : Math.max(0, s.lastIndex - matchIndex)
        }
      })
    }
  }
  // For the parent that spawned us (`npm run bench -- cpu` counts Raft messages per entry); not on HTTP, which it would perturb.
  process.on('message', (m: { type?: unknown, id?: unknown }) => {
    if (m?.type === 'kv-node:stats') process.send?.({ type: 'kv-node:stats', id: m.id, transport: transport.stats() })
  })
  const server = createKvHttpServer({ raft, state, httpAddrOf, status })
  const [host, port] = [flags.http.slice(0, flags.http.lastIndexOf(':')), Number(flags.http.slice(flags.http.lastIndexOf(':') + 1))]
  await new Promise<void>((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      fatal(err.code === 'EADDRINUSE' ? `HTTP address ${flags.http} is already in use` : `cannot listen on ${flags.http}: ${err.message}`)
    })
    server.listen(port, host, resolve)
  })
  process.stdout.write(JSON.stringify({ event: 'ready', id: flags.id, http: flags.http, peerId: mesh.peerId, addrs: mesh.multiaddrs }) + '\n')

  let stopping = false
  const stop = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    server.close()
    await raft.stop()
    await mesh.stop()
    process.exit(0)
  }
  process.on('SIGTERM', () => { void stop() })
  process.on('SIGINT', () => { void stop() })
}

main().catch(err => { fatal((err as Error).message) })
