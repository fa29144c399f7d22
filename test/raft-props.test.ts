/**
 * Property tests of the Raft core's pure parts, in the spirit of etcd's
 * quorum/quick_test.go: the optimised code against a naive restatement of
 * the rule, and invariants that must survive any sequence of valid inputs.
 * The seed is fixed so every run is the same; a failure prints fast-check's
 * counterexample with the seed and path that replay it.
 */
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { applyConfChange, decodeConfChange, validateConfChange } from '../raft/core/config.js'
import { ConfigChangeError } from '../raft/errors.js'
import { committedIndex, voteOutcome } from '../raft/core/quorum.js'
import { RaftLog } from '../raft/core/raft-log.js'
import { EntryType, type ConfChange, type ConfigState, type Entry, type NodeId } from '../raft/types.js'

const seed = 20261126

function holds<Ts> (t: Test, name: string, property: fc.IProperty<Ts>, numRuns: number, todo?: string): void {
  const out = fc.check(property, { seed, numRuns })
  t.notOk(out.failed, name, { report: fc.defaultReportMessage(out), ...(todo === undefined ? {} : { todo }) })
}

const ids: NodeId[] = ['a', 'b', 'c', 'd', 'e', 'f', 'g']
const voterSets = fc.uniqueArray(fc.constantFrom(...ids), { maxLength: ids.length })
const isMajority = (count: number, of: number): boolean => 2 * count > of

t.test('quorum.committedIndex is the highest index a majority of voters has matched', t => {
  // Naive: try every index and count the voters that have it.
  const naive = (voters: readonly NodeId[], match: (id: NodeId) => number): number => {
    let best = 0
    for (let index = 0; index <= 20; index++) {
      if (isMajority(voters.filter(v => match(v) >= index).length, voters.length)) best = index
    }
    return best
  }
  holds(t, 'agrees with counting', fc.property(voterSets, fc.array(fc.nat(20), { minLength: ids.length, maxLength: ids.length }), (voters, matches) => {
    const match = (id: NodeId): number => matches[ids.indexOf(id)]
    return committedIndex(voters, match) === naive(voters, match)
  }), 1000)
  t.end()
})

t.test('quorum.voteOutcome agrees with counting the votes of voters only', t => {
  const naive = (voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): string => {
    const granted = voters.filter(v => votes.get(v) === true).length
    const rejected = voters.filter(v => votes.get(v) === false).length
    if (isMajority(granted, voters.length)) return 'won'
    // Lost when even every outstanding vote could not make a majority.
    if (!isMajority(voters.length - rejected, voters.length)) return 'lost'
    return 'pending'
  }
  // Votes come from voters and non-voters alike (e.g. a learner or a removed node answering late).
  const ballots = fc.array(fc.constantFrom(true, false, undefined), { minLength: ids.length, maxLength: ids.length })
  holds(t, 'agrees with counting', fc.property(voterSets, ballots, (voters, ballot) => {
    const votes = new Map<NodeId, boolean>()
    ids.forEach((id, i) => { if (ballot[i] !== undefined) votes.set(id, ballot[i]) })
    return voteOutcome(voters, votes) === naive(voters, votes)
  }), 1000)
  t.end()
})

/**
 * One step of a model cluster seen from one follower: the current leader
 * proposes, sends any slice of its log (a fresh, stale or duplicated Append),
 * advances its commit index, or loses to a new leader that keeps at least
 * the committed prefix (Leader Completeness) and appends its no-op.
 */
type LogOp =
  | { readonly kind: 'propose', readonly count: number }
  | { readonly kind: 'send', readonly from: number, readonly len: number }
  | { readonly kind: 'commit', readonly to: number }
  | { readonly kind: 'elect', readonly keep: number }

const logOps = fc.array(fc.oneof(
  fc.record({ kind: fc.constant('propose' as const), count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant('send' as const), from: fc.nat(), len: fc.nat() }),
  fc.record({ kind: fc.constant('commit' as const), to: fc.nat() }),
  fc.record({ kind: fc.constant('elect' as const), keep: fc.nat() })
), { maxLength: 60 })

/** How many leading entries of the follower's log equal the leader's. */
function agreeing (log: RaftLog, leader: readonly Entry[]): number {
  let n = 0
  while (n < leader.length && log.term(n + 1) === leader[n].term) n++
  return n
}

function runLogOps (ops: readonly LogOp[]): void {
  const log = new RaftLog(null, [], 0)
  let term = 1
  let leader: Entry[] = []
  let leaderCommit = 0
  let clusterCommit = 0
  const committed: Entry[] = []
  const entry = (type: EntryType): Entry => ({ index: leader.length + 1, term, type, data: new Uint8Array(0) })
  for (const op of ops) {
    switch (op.kind) {
      case 'propose':
        for (let i = 0; i < op.count; i++) leader.push(entry(EntryType.Normal))
        break
      case 'commit':
        leaderCommit = Math.max(leaderCommit, op.to % (leader.length + 1))
        clusterCommit = Math.max(clusterCommit, leaderCommit)
        break
      case 'elect':
        term++
        leader = leader.slice(0, clusterCommit + op.keep % (leader.length - clusterCommit + 1))
        leader.push(entry(EntryType.Noop))
        leaderCommit = 0
        break
      case 'send': {
        const prev = op.from % (leader.length + 1)
        const last = prev + op.len % (leader.length - prev + 1)
        // The follower's consistency check (§3.5): otherwise it rejects and nothing changes.
        if (!log.matchTerm(prev, prev === 0 ? 0 : leader[prev - 1].term)) break
        const before = agreeing(log, leader)
        const { appended } = log.append(leader.slice(prev, last))
        log.commitTo(Math.min(leaderCommit, last))
        for (let i = 1; i <= log.lastIndex(); i++) {
          if (log.entry(i)?.index !== i) throw new Error(`log not contiguous at ${i}`)
        }
        if (appended.some(e => log.entry(e.index) !== e)) throw new Error('an appended entry is not in the log')
        if (agreeing(log, leader) < Math.max(before, last)) {
          throw new Error(`entries that agreed with the leader were lost: agreed ${before}, sent ${prev + 1}..${last}, now ${agreeing(log, leader)}`)
        }
        committed.forEach((e, i) => {
          if (log.entry(i + 1) !== e) throw new Error(`committed entry ${i + 1} changed`)
        })
        for (let i = committed.length + 1; i <= log.committed; i++) committed.push(log.entry(i) as Entry)
        break
      }
    }
  }
}

t.test('RaftLog.append keeps the log contiguous and never loses an agreed or committed entry', t => {
  holds(t, 'any sequence of leader-style Appends', fc.property(logOps, ops => { runLogOps(ops) }), 500)
  t.end()
})

const members: NodeId[] = ['a', 'b', 'c', 'd', 'e']
const confChanges = fc.record({
  type: fc.constantFrom('addVoter', 'removeNode', 'addLearner', 'promoteLearner'),
  node: fc.constantFrom(...members)
}) as fc.Arbitrary<ConfChange>

function checkConfig (c: ConfigState): void {
  if (c.voters.length === 0) throw new Error('no voters left')
  if (new Set(c.voters).size !== c.voters.length || new Set(c.learners).size !== c.learners.length) throw new Error(`duplicate member in ${JSON.stringify(c)}`)
  const both = c.voters.filter(v => c.learners.includes(v))
  if (both.length > 0) throw new Error(`${both.join(',')} both voter and learner`)
}

t.test('config: valid changes never empty the voters nor make a node both voter and learner', t => {
  const initial = fc.uniqueArray(fc.constantFrom(...members), { minLength: 1 }).map(voters => ({ voters: voters.sort(), learners: [] }))
  holds(t, 'any sequence of changes', fc.property(initial, fc.array(confChanges, { maxLength: 40 }), (start, changes) => {
    let config: ConfigState = start
    for (const cc of changes) {
      const why = validateConfChange(config, cc)
      const next = applyConfChange(config, cc)
      // A refused change leaves the configuration alone, so every node folds a bad entry the same way.
      if (why !== null && next !== config) throw new Error(`refused change ${JSON.stringify(cc)} (${why}) altered the config`)
      if (why === null && JSON.stringify(next) === JSON.stringify(config)) throw new Error(`accepted change ${JSON.stringify(cc)} did nothing`)
      checkConfig(next)
      config = next
    }
  }), 500)
  t.end()
})

t.test('decodeConfChange rejects junk with ConfigChangeError and throws nothing else', t => {
  const types = new Set(['addVoter', 'removeNode', 'addLearner', 'promoteLearner'])
  const decodesOrRefuses = (data: Uint8Array): boolean => {
    try {
      const cc = decodeConfChange(data)
      return types.has(cc.type) && typeof cc.node === 'string' && cc.node.length > 0
    } catch (err) {
      return err instanceof ConfigChangeError
    }
  }
  const encoder = new TextEncoder()
  holds(t, 'arbitrary bytes', fc.property(fc.uint8Array({ maxLength: 64 }), decodesOrRefuses), 2000)

  // JSON that looks like a change: the keys a decoder reads and the ones every object inherits.
  const keys = fc.oneof(fc.constantFrom('type', 'node', 'toString', 'valueOf', 'constructor'), fc.string({ maxLength: 4 }))
  const { json } = fc.letrec<{ json: unknown }>(tie => ({
    json: fc.oneof(
      { depthSize: 'small' },
      fc.jsonValue({ maxDepth: 0 }),
      fc.array(tie('json'), { maxLength: 3 }),
      fc.dictionary(keys, tie('json'), { maxKeys: 3 })
    )
  }))
  holds(t, 'JSON documents of any shape', fc.property(json, v => decodesOrRefuses(encoder.encode(JSON.stringify(v)))), 2000)
  t.end()
})
