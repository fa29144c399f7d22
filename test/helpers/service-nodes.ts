/**
 * Real mesh nodes on 127.0.0.1 in one process, each with the ServiceHost a
 * Cluster would give its services, for the cache and event tests.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FaultInjector } from '../../gossip/fault.js'
import { silentLogger } from '../../gossip/logger.js'
import { createMeshNode, type MeshNode } from '../../gossip/node.js'
import { MeshRpc } from '../../gossip/rpc.js'
import type { ServiceHost } from '../../lib/service-host.js'

export interface ServiceNode {
  readonly mesh: MeshNode
  readonly rpc: MeshRpc
  readonly host: ServiceHost
}

export interface ServiceCluster {
  readonly nodes: ServiceNode[]
  readonly faults: FaultInjector
  readonly root: string
  /** A host for `mesh` with another clock (TTL tests). */
  hostWithClock: (node: ServiceNode, clock: () => number) => ServiceHost
  stop: () => Promise<void>
}

export async function until (what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/** Starts `ids.length` nodes that join through the first and waits until each sees all the others. */
export async function startServiceCluster (name: string, ids: string[]): Promise<ServiceCluster> {
  const root = await mkdtemp(join(tmpdir(), `raftmesh-${name}-`))
  const nodes: ServiceNode[] = []
  for (const id of ids) {
    const mesh = await createMeshNode({ nodeId: id, clusterName: name, appVersion: '1', secret: 'a cluster secret of some length', dataDir: join(root, id), bootstrap: nodes.slice(0, 1).map(n => n.mesh.multiaddrs[0]) })
    const rpc = await MeshRpc.create(mesh)
    const host: ServiceHost = { nodeId: id, mesh, channel: (topic, opts) => mesh.channel(topic, opts), calls: rpc, logger: silentLogger, clock: Date.now }
    nodes.push({ mesh, rpc, host })
  }
  await until('every node sees all the others', () => nodes.every(n => n.mesh.members().length === ids.length - 1))
  const faults = new FaultInjector(nodes.map(n => n.mesh))
  return {
    nodes,
    faults,
    root,
    hostWithClock: (node, clock) => ({ ...node.host, clock }),
    stop: async () => {
      for (const n of nodes) await n.rpc.close()
      for (const n of nodes) await n.mesh.stop()
      await rm(root, { recursive: true, force: true })
    }
  }
}
