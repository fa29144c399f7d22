/**
 * The fault bench's rejoin measure (bench/faults/series.ts) on a made-up
 * history: from the restarted process's Cluster.start to every other live
 * node seeing it in the mesh and in gossipsub, and to its own join.
 */
import t from 'tap'
import type { FaultWindow } from '../bench/faults/nemesis.js'
import { rejoins } from '../bench/faults/series.js'
import type { HistoryEntry } from '../testkit/cluster-processes.js'

const ids = ['n1', 'n2', 'n3']
const peers = ['P1', 'P2', 'P3']
const kill: FaultWindow = { kind: 'kill', node: 2, wasLeader: false, from: 1000, to: 3000 }

function history (extra: HistoryEntry[] = []): HistoryEntry[] {
  return [
    { node: 2, type: 'killed', signal: 'SIGKILL', at: 1000 },
    { node: 1, type: 'member-up', id: 'n3', at: 1500 },
    { node: 2, type: 'started', pid: 7, at: 2000 },
    { node: 2, type: 'cluster-starting', at: 2600 },
    { node: 1, type: 'gossip-subscribed', peerId: 'P3', at: 2650 },
    { node: 0, type: 'member-up', id: 'n3', at: 2700 },
    { node: 1, type: 'member-up', id: 'n3', at: 2750 },
    { node: 0, type: 'gossip-subscribed', peerId: 'P3', at: 2800 },
    { node: 2, type: 'cluster-joined', at: 3100 },
    ...extra
  ]
}

t.test('a restarted node: the last of the others to see it, and its own join, from its Cluster.start', async t => {
  t.same(rejoins(history(), [kill], ids, peers), [{ kind: 'kill', meshMs: 150, gossipMs: 200, joinedMs: 500 }])
})

t.test('an event before the restart (an earlier life) does not count; a node that never saw it makes it null', async t => {
  const h = history().filter(e => !(e.node === 1 && e.type === 'member-up' && e.at > 2000))
  h.push({ node: 1, type: 'leader', leader: 'n1', term: 3, at: 2900 })
  t.same(rejoins(h, [kill], ids, peers), [{ kind: 'kill', meshMs: null, gossipMs: 200, joinedMs: 500 }])
})

t.test('pauses and partitions are no rejoins; a kill with no restart recorded is left out', async t => {
  t.same(rejoins(history(), [{ ...kill, kind: 'pause' }, { ...kill, kind: 'partition' }], ids, peers), [])
  t.same(rejoins(history().filter(e => e.type !== 'cluster-starting'), [kill], ids, peers), [])
})
