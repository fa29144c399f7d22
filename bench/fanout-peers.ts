/**
 * The processes of one side of `npm run bench -- cache` / `-- events`: N
 * raftmesh nodes (bench/procs/cache-peer.ts) or N Redis pub/sub clients
 * (bench/procs/redis-peer.ts) with their redis-server, on this machine's
 * loopback or each in a network namespace of its own (testkit/netns.ts),
 * where a partition drops the packets between the sides. Both kinds answer
 * the same requests (bench/procs/fanout-peer.ts).
 *
 * On loopback, raftmesh partitions through its transport's fault layer
 * (each node refuses and hangs up on the peers across the cut); Redis has
 * no such layer, so its partition row needs netns. With netns, the
 * redis-server runs in the namespace of the first client (the first side of
 * any partition), and this process reaches it over a client link.
 *
 * Only processes started here are ever signalled, by their own process
 * objects (BenchChild, RedisServer).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from '../testkit/local-cluster.js'
import { NetnsLab } from '../testkit/netns.js'
import { LOOPBACK } from '../testkit/placement.js'
import { RedisServer } from './redis-server.js'
import { BenchChild, waitFor } from './transport.js'

const procs = join(dirname(fileURLToPath(import.meta.url)), 'procs')

export type FanoutSystem = 'raftmesh' | 'redis'
export type FanoutNetwork = 'loopback' | 'netns'

export interface FanoutPeers {
  readonly system: FanoutSystem
  readonly children: readonly BenchChild[]
  /** Whether {@link partition} can cut this system. */
  readonly canPartition: boolean
  /** Sides by node index; nodes on no side form one more. */
  partition: (sides: ReadonlyArray<readonly number[]>) => Promise<void>
  heal: () => Promise<void>
  stop: () => Promise<void>
}

/** Sends a request and throws the child's error, if it answered one. */
export async function ask<T> (c: BenchChild, msg: { type: string, [k: string]: unknown }, timeoutMs = 10_000): Promise<T> {
  const r = await c.call<T & { error?: string }>(msg, timeoutMs)
  if (typeof r.error === 'string') throw new Error(`${c.name}: ${r.error}`)
  return r
}

async function stopAll (children: readonly BenchChild[]): Promise<void> {
  await Promise.all(children.map(async c => { await c.stop() }))
}

export async function startRaftmeshPeers (n: number, network: FanoutNetwork): Promise<FanoutPeers> {
  const lab = network === 'netns' ? await NetnsLab.create({ hosts: n }) : null
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-bench-fanout-'))
  const env = { RAFTMESH_BENCH_SECRET: randomBytes(32).toString('hex') }
  const children: BenchChild[] = []
  const stop = async (): Promise<void> => {
    await stopAll(children)
    await rm(dir, { recursive: true, force: true })
    await lab?.destroy()
  }
  try {
    const placements = Array.from({ length: n }, (_, i) => lab?.placement(i) ?? LOOPBACK)
    const listen: string[] = []
    // Each namespace has ports of its own: one free here is free there too.
    for (const p of placements) listen.push(`/ip4/${p.host}/tcp/${await freePort()}`)
    for (let i = 0; i < n; i++) {
      children.push(new BenchChild(`n${i + 1}`, join(procs, 'cache-peer.ts'), { nodeId: `n${i + 1}`, clusterName: 'bench-fanout', dataDir: join(dir, `n${i + 1}`), listen: listen[i], bootstrap: i === 0 ? [] : [listen[0]] }, env, placements[i]))
    }
    const peerIds = (await Promise.all(children.map(async c => await c.ready))).map(r => String(r.peerId))
    const connected = async (): Promise<boolean> => (await Promise.all(children.map(async c => await ask<{ members: number, subscribers: number }>(c, { type: 'status' })))).every(s => s.members === n - 1 && s.subscribers === n - 1)
    await waitFor(`all ${n} raftmesh nodes to see each other and every channel`, connected, 60_000, 50)
    return {
      system: 'raftmesh',
      children,
      canPartition: true,
      partition: async sides => {
        const named = new Set(sides.flat())
        const all = [...sides, [...children.keys()].filter(i => !named.has(i))].filter(s => s.length > 0)
        if (lab !== null) {
          await lab.partition(all)
          return
        }
        const sideOf = (i: number): number => all.findIndex(s => s.includes(i))
        await Promise.all(children.map(async (c, i) => {
          await ask(c, { type: 'partition', deny: peerIds.filter((_, j) => sideOf(j) !== sideOf(i)) })
        }))
      },
      heal: async () => {
        if (lab !== null) await lab.heal()
        else await Promise.all(children.map(async c => await ask(c, { type: 'heal' })))
      },
      stop
    }
  } catch (err) {
    await stop()
    throw err
  }
}

export async function startRedisPeers (n: number, network: FanoutNetwork): Promise<FanoutPeers> {
  const lab = network === 'netns' ? await NetnsLab.create({ hosts: n, clientLinks: true }) : null
  const children: BenchChild[] = []
  let server: RedisServer | null = null
  const stop = async (): Promise<void> => {
    await stopAll(children)
    await server?.stop()
    await lab?.destroy()
  }
  try {
    server = await RedisServer.start('default', lab?.placement(0) ?? LOOPBACK)
    const s = server
    for (let i = 0; i < n; i++) children.push(new BenchChild(`r${i + 1}`, join(procs, 'redis-peer.ts'), { nodeId: `r${i + 1}`, host: s.host, port: s.port }, {}, lab?.placement(i) ?? LOOPBACK))
    await Promise.all(children.map(async c => await c.ready))
    await waitFor(`all ${n} Redis clients subscribed`, async () => (await Promise.all(children.map(async c => await ask<{ ready: boolean }>(c, { type: 'status' })))).every(r => r.ready), 30_000, 50)
    return {
      system: 'redis',
      children,
      canPartition: lab !== null,
      partition: async sides => {
        if (lab === null) throw new Error('a Redis partition needs network namespaces (--network netns, as root)')
        const named = new Set(sides.flat())
        await lab.partition([...sides, [...children.keys()].filter(i => !named.has(i))].filter(x => x.length > 0))
      },
      heal: async () => { await lab?.heal() },
      stop
    }
  } catch (err) {
    await stop()
    throw err
  }
}
