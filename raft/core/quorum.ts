/**
 * Majority rules, kept apart from the leader so they can be checked against
 * a naive implementation.
 */
import type { NodeId } from '../types.js'

/** How many voters make a majority. */
export function majority (voters: number): number {
  return Math.floor(voters / 2) + 1
}

/**
 * The highest index that a majority of voters have matched: sort the match
 * indexes descending and take the one at position majority-1.
 */
export function committedIndex (voters: readonly NodeId[], match: (id: NodeId) => number): number {
  if (voters.length === 0) return 0
  const indexes = voters.map(match).sort((a, b) => b - a)
  return indexes[majority(voters.length) - 1]
}

export type VoteOutcome = 'won' | 'lost' | 'pending'

/** Tallies granted and rejected votes among the voters. */
export function voteOutcome (voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  let granted = 0
  let rejected = 0
  for (const id of voters) {
    const v = votes.get(id)
    if (v === true) granted++
    else if (v === false) rejected++
  }
  const need = majority(voters.length)
  if (granted >= need) return 'won'
  if (voters.length - rejected < need) return 'lost'
  return 'pending'
}

/** True when the given set includes a majority of voters. */
export function hasQuorum (voters: readonly NodeId[], present: (id: NodeId) => boolean): boolean {
  let n = 0
  for (const id of voters) if (present(id)) n++
  return voters.length > 0 && n >= majority(voters.length)
}
