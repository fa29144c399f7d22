/**
 * Several Cluster nodes in this process on 127.0.0.1, each with its own
 * data directory: every node bootstraps through the first, and peer
 * exchange completes the mesh.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, type ClusterOptions } from '../../lib/index.js'
import { freePort } from '../../testkit/local-cluster.js'

export const SECRET = 'a test secret of at least thirty-two bytes'

export interface LocalClusters {
  readonly nodes: Cluster[]
  readonly dirs: string[]
  readonly addrs: string[]
  /** Options to start node i again (same data directory and port). */
  optionsFor(i: number, extra?: Partial<ClusterOptions>): ClusterOptions
  leader(): Cluster
  stopAll(): Promise<void>
}

export async function startClusters (n: number, extra: Partial<ClusterOptions> = {}): Promise<LocalClusters> {
  const ports = []
  for (let i = 0; i < n; i++) ports.push(await freePort())
  const addrs = ports.map(p => `/ip4/127.0.0.1/tcp/${p}`)
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-cluster-'))
  const dirs = addrs.map((_, i) => join(root, `n${i + 1}`))
  const optionsFor = (i: number, more: Partial<ClusterOptions> = {}): ClusterOptions => ({
    name: 'test',
    secret: SECRET,
    dataDir: dirs[i],
    nodeId: `n${i + 1}`,
    listen: [addrs[i]],
    bootstrap: i === 0 ? [] : [addrs[0]],
    expect: n,
    sessionTtlMs: 3000,
    panicAfterMs: 1500,
    onPanic: () => {},
    ...extra,
    ...more
  })
  const nodes = await Promise.all(addrs.map(async (_, i) => await Cluster.start(optionsFor(i))))
  const all: LocalClusters = {
    nodes,
    dirs,
    addrs,
    optionsFor,
    leader: () => {
      const l = all.nodes.find(c => c.raftStatus().role === 'leader')
      if (l === undefined) throw new Error('no leader')
      return l
    },
    stopAll: async () => {
      await Promise.all(all.nodes.map(async c => { await c.stop() }))
      await rm(root, { recursive: true, force: true })
    }
  }
  return all
}

/** Resolves when `check` passes, polling; rejects after `ms`. */
export async function eventually (check: () => boolean, ms = 15_000, what = 'condition'): Promise<void> {
  const until = Date.now() + ms
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}
