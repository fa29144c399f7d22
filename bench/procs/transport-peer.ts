/**
 * The far end of `npm run bench -- transport` and `-- rpc`: a mesh node
 * that answers every Raft Heartbeat with a HeartbeatResp at once, and the
 * mesh RPC's `echo` with the request body, so both round trips can be
 * measured against one process in one run.
 *
 * Usage (spawned by bench/transport.ts or bench/rpc.ts with an IPC channel):
 *   node --import tsx bench/procs/transport-peer.ts '<{"nodeId","clusterName","dataDir"}>'
 * The cluster secret comes in RAFTMESH_BENCH_SECRET (not argv, which `ps`
 * shows). Once started it prints and sends {type:'ready', peerId,
 * multiaddrs}; it answers {id, type:'stats'} with its counters and CPU time,
 * and stops when the IPC channel closes (the bench ended or died).
 */
import type { Message } from '../../raft/core/messages.js'
import { createMeshNode } from '../../gossip/node.js'
import { Libp2pRaftTransport } from '../../gossip/raft-transport.js'
import { MeshRpc } from '../../gossip/rpc.js'
import { exitWithParent } from './lifecycle.js'

interface PeerArgs { nodeId: string, clusterName: string, dataDir: string }

if (process.send === undefined) {
  console.error('transport-peer must be spawned with an IPC channel')
  process.exit(2)
}
const send = (m: object): void => { if (process.connected) process.send?.(m) }
const args = JSON.parse(process.argv[2] ?? '{}') as PeerArgs
const secret = process.env.RAFTMESH_BENCH_SECRET ?? ''

const mesh = await createMeshNode({ nodeId: args.nodeId, clusterName: args.clusterName, appVersion: 'bench', dataDir: args.dataDir, secret })
const transport = await Libp2pRaftTransport.create(mesh)
let answered = 0
transport.onMessage((m: Message) => {
  if (m.type !== 'Heartbeat') return
  answered++
  transport.send([{ type: 'HeartbeatResp', from: mesh.nodeId, to: m.from, term: m.term, readSeq: m.readSeq }])
})
const rpc = await MeshRpc.create(mesh)
rpc.handle('echo', async body => body)

exitWithParent(async () => {
  await rpc.close()
  await transport.close()
  await mesh.stop()
})
process.on('message', (msg: { id?: number, type?: string }) => {
  if (msg.type === 'stats') send({ id: msg.id, type: 'stats', answered, transport: transport.stats(), rpc: rpc.stats(), cpu: process.cpuUsage() })
})

const ready = { type: 'ready', peerId: mesh.peerId, multiaddrs: mesh.multiaddrs }
process.stdout.write(JSON.stringify(ready) + '\n')
send(ready)
