import t from 'tap'
import { probe } from '../lib/http/health.js'
import type { ClusterStatus } from '../lib/index.js'

/** A status of node n1 in a healthy three-voter cluster, changed by `over`. */
function status (over: { raft?: Partial<ClusterStatus['raft']>, session?: ClusterStatus['session'], panic?: ClusterStatus['panic'] } = {}): ClusterStatus {
  return {
    id: 'n1',
    time: 0,
    members: [],
    raft: { role: 'follower', term: 3, leader: 'n2', commitIndex: 100, appliedIndex: 100, lastIndex: 100, voters: ['n1', 'n2', 'n3'], learners: [], quorum: 2, failureTolerance: 1, ...over.raft },
    session: over.session ?? { id: 's1', leaseRemainingMs: 1000 },
    sessions: [],
    locks: [],
    queues: [],
    schedules: [],
    caches: [],
    events: { publishers: 0, published: 0, received: 0, duplicates: 0, repaired: 0, lost: 0, forged: 0, unknownPublisher: 0, malformed: 0, overflowed: 0, handlerErrors: 0 },
    panic: over.panic ?? null
  }
}

const ready = (s: ClusterStatus | null, maxApplyLag = 10): ReturnType<typeof probe> => probe('ready', { status: s, maxApplyLag })

t.test('ready: a member with a leader, a session and nothing committed left to apply', async t => {
  t.same(ready(status()), { ok: true })
  t.same(ready(status({ raft: { role: 'leader', leader: 'n1' } })), { ok: true }, 'the leader itself')
  t.same(ready(status({ raft: { voters: ['n2', 'n3'], learners: ['n1'] } })), { ok: true }, 'a learner serves too')
})

t.test('ready fails, with a reason, for each condition it checks', async t => {
  t.match(ready(status({ raft: { commitIndex: 111, appliedIndex: 100 } })), { ok: false, reason: /applied index 100 trails commit index 111 by 11/ }, 'applied trails commit by more than maxApplyLag')
  t.same(ready(status({ raft: { commitIndex: 110, appliedIndex: 100 } })), { ok: true }, 'a lag of exactly maxApplyLag is tolerated')
  t.match(ready(status({ raft: { commitIndex: 101, appliedIndex: 100 } }), 0), { ok: false }, 'maxApplyLag 0: applied must reach commit')
  t.match(ready(status({ raft: { leader: null, role: 'candidate' } })), { ok: false, reason: /no known leader \(role candidate, term 3\)/ })
  t.match(ready(status({ raft: { voters: ['n2', 'n3'] } })), { ok: false, reason: /not a member/ })
  t.match(ready(status({ session: { id: null, leaseRemainingMs: null } })), { ok: false, reason: /no open session/ })
  t.match(ready(status({ panic: { reason: 'cut off', sinceMs: 1500, at: 1 } })), { ok: false, reason: /quorum-loss panic: cut off/ })
  t.match(ready(null), { ok: false, reason: /stopped/ })
})

t.test('alive fails on panic and after stop, started only after stop', async t => {
  const panicked = status({ panic: { reason: 'cut off', sinceMs: 1500, at: 1 } })
  const noLeader = status({ raft: { leader: null } })
  t.same(probe('alive', { status: noLeader, maxApplyLag: 0 }), { ok: true }, 'an election in progress is no reason to restart a node')
  t.match(probe('alive', { status: panicked, maxApplyLag: 0 }), { ok: false, reason: /panic/ })
  t.match(probe('alive', { status: null, maxApplyLag: 0 }), { ok: false })
  t.same(probe('started', { status: panicked, maxApplyLag: 0 }), { ok: true }, 'startup finished, whatever happened since')
  t.match(probe('started', { status: null, maxApplyLag: 0 }), { ok: false })
})
