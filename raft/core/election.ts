/**
 * Elections (thesis §3.4) with pre-vote (§9.6): asking for votes, granting
 * them, and counting them as a (pre-)candidate.
 */
import type { RaftCore } from './core.js'
import { stepFollower, stepReads } from './follower.js'
import type { Message, VoteRequest } from './messages.js'
import { voteOutcome } from './quorum.js'

export function requestVotes (r: RaftCore, type: 'PreVote' | 'Vote', term: number, force: boolean): void {
  r.votes.set(r.id, true)
  if (voteOutcome(r.config.voters, r.votes) === 'won') {
    onElectionWon(r, type)
    return
  }
  for (const to of r.config.voters) {
    if (to === r.id) continue
    r.send({ type, from: r.id, to, term, lastIndex: r.log.lastIndex(), lastTerm: r.log.lastTerm(), force })
  }
}

function onElectionWon (r: RaftCore, type: 'PreVote' | 'Vote'): void {
  if (type === 'PreVote') {
    r.becomeCandidate()
    requestVotes(r, 'Vote', r.term, false)
  } else {
    r.becomeLeader()
  }
}

export function handleVoteRequest (r: RaftCore, m: VoteRequest): void {
  // One vote per term (§3.4); a pre-vote for a future term binds nothing.
  const canVote = r.vote === m.from ||
    (r.vote === null && r.leader === null) ||
    (m.type === 'PreVote' && m.term > r.term)
  // §3.6.1: never elect a leader whose log lacks entries we have.
  const grant = canVote && r.log.isUpToDate(m.lastIndex, m.lastTerm)
  const respType = m.type === 'PreVote' ? 'PreVoteResp' : 'VoteResp'
  // A granted pre-vote answers in the proposed term so the candidate counts it (etcd does the same).
  r.send({ type: respType, from: r.id, to: m.from, term: grant ? m.term : r.term, reject: !grant })
  if (grant && m.type === 'Vote') {
    r.recordVote(m.from)
  }
}

export function stepCandidate (r: RaftCore, m: Message): void {
  switch (m.type) {
    case 'Append':
    case 'Heartbeat':
    case 'Commit':
    case 'Snapshot':
      // Someone won this term: follow them (§3.4).
      r.becomeFollower(m.term, m.from)
      stepFollower(r, m)
      return
    case 'PreVoteResp':
    case 'VoteResp': {
      const mine = r.role === 'preCandidate' ? 'PreVoteResp' : 'VoteResp'
      if (m.type !== mine) return
      r.votes.set(m.from, !m.reject)
      const outcome = voteOutcome(r.config.voters, r.votes)
      if (outcome === 'won') onElectionWon(r, m.type === 'PreVoteResp' ? 'PreVote' : 'Vote')
      else if (outcome === 'lost') r.becomeFollower(r.term, null)
      return
    }
    default:
      stepReads(r, m)
  }
}
