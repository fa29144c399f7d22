/**
 * The far end of `npm run bench -- transport`: a mesh node with the Raft
 * transport that answers every Heartbeat with a HeartbeatResp at once.
 *
 * Usage (spawned by bench/transport.ts with an IPC channel):
 *   node --import tsx bench/procs/transport-peer.ts '<{"nodeId","clusterName","dataDir"}>'
 * The cluster secret comes in RAFTMESH_BENCH_SECRET (not argv, which `ps`
 * shows). Once started it prints and sends {type:'ready', peerId,
 * multiaddrs}; it answers {id, type:'stats'} with the transport counters,
 * and stops when the IPC channel closes (the bench ended or died).
 */
import type { Message } from '../../raft/messages.js'
import { createMeshNode } from '../../gossip/node.js'
import { Libp2pRaftTransport } from '../../gossip/raft-transport.js'
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

exitWithParent(async () => {
  await transport.close()
  await mesh.stop()
})
process.on('message', (msg: { id?: number, type?: string }) => {
  if (msg.type === 'stats') send({ id: msg.id, type: 'stats', answered, transport: transport.stats(), cpu: process.cpuUsage() })
})

const ready = { type: 'ready', peerId: mesh.peerId, multiaddrs: mesh.multiaddrs }
process.stdout.write(JSON.stringify(ready) + '\n')
send(ready)
