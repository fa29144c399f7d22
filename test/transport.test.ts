import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createMeshNode } from '../gossip/node.js'
import { Libp2pRaftTransport } from '../gossip/raft-transport.js'
import { MemoryNetwork } from '../raft/driver/transport.js'
import { runTransportCompliance } from './helpers/transport-compliance.js'

runTransportCompliance(t, 'MemoryNetwork', async () => {
  const net = new MemoryNetwork()
  const a = net.join('a')
  const b = net.join('b')
  return { a, b, aId: 'a', bId: 'b', close: async () => { await a.close(); await b.close() } }
})

runTransportCompliance(t, 'Libp2pRaftTransport', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-transport-compliance-'))
  const opts = { clusterName: 'compliance', appVersion: '1', secret: 'a cluster secret of some length' }
  const ma = await createMeshNode({ ...opts, nodeId: 'a', dataDir: join(dir, 'a') })
  const mb = await createMeshNode({ ...opts, nodeId: 'b', dataDir: join(dir, 'b'), bootstrap: ma.multiaddrs })
  const end = Date.now() + 15_000
  while (!ma.membership.isAlive('b') || !mb.membership.isAlive('a')) {
    if (Date.now() > end) throw new Error('the two mesh nodes did not join within 15 s')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  const a = await Libp2pRaftTransport.create(ma)
  const b = await Libp2pRaftTransport.create(mb)
  return {
    a, b, aId: 'a', bId: 'b',
    close: async () => {
      await a.close()
      await b.close()
      await ma.stop()
      await mb.stop()
      await rm(dir, { recursive: true, force: true })
    }
  }
})
