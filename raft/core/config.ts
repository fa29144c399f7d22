/**
 * Membership: one change at a time, taking effect when appended (the
 * config-in-log rule of thesis §4.1). Safety of single-server changes rests on
 * two leader-side rules enforced by the core: a new change is refused while
 * another is uncommitted, and until the leader has committed an entry of its
 * own term (the fix for the bug described on raft-dev in 2015).
 */
import { assertNever } from '../assert-never.js'
import { ConfigChangeError } from '../errors.js'
import type { ConfChange, ConfigState, NodeId } from '../types.js'

const encoder = new TextEncoder()
// A leading U+FEFF is part of the string (a node id, say), not a byte-order mark to drop.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true })
const changeTypes = new Set(['addVoter', 'removeNode', 'addLearner', 'promoteLearner'])

export const emptyConfig: ConfigState = Object.freeze({ voters: [], learners: [] })

export function encodeConfChange (cc: ConfChange): Uint8Array {
  return encoder.encode(JSON.stringify({ type: cc.type, node: cc.node }))
}

/** Decodes a Config entry's payload; throws ConfigChangeError on anything malformed. */
export function decodeConfChange (data: Uint8Array): ConfChange {
  let v: unknown
  try {
    v = JSON.parse(decoder.decode(data))
  } catch {
    throw new ConfigChangeError('config entry is not valid JSON')
  }
  if (typeof v !== 'object' || v === null) throw new ConfigChangeError('config entry is not an object')
  const { type, node } = v as Record<string, unknown>
  if (typeof type !== 'string' || !changeTypes.has(type)) throw new ConfigChangeError(`unknown config change type ${JSON.stringify(type) ?? typeof type}`)
  if (typeof node !== 'string' || node.length === 0) throw new ConfigChangeError('config change needs a node id')
  return { type, node } as ConfChange
}

/** Why a change cannot apply to this configuration, or null when it can. */
export function validateConfChange (config: ConfigState, cc: ConfChange): string | null {
  const isVoter = config.voters.includes(cc.node)
  const isLearner = config.learners.includes(cc.node)
  switch (cc.type) {
    case 'addVoter':
      return isVoter ? `${cc.node} is already a voter` : null
    case 'addLearner':
      return isVoter || isLearner ? `${cc.node} is already a member` : null
    case 'promoteLearner':
      return isLearner ? null : `${cc.node} is not a learner`
    case 'removeNode':
      if (!isVoter && !isLearner) return `${cc.node} is not a member`
      if (isVoter && config.voters.length === 1) return 'cannot remove the last voter'
      return null
    default:
      return assertNever(cc, 'config change')
  }
}

/**
 * Applies a change. Changes that do not validate leave the configuration as
 * it is, so every node folds the same log to the same configuration even if
 * a bad entry were ever appended.
 */
export function applyConfChange (config: ConfigState, cc: ConfChange): ConfigState {
  if (validateConfChange(config, cc) !== null) return config
  const without = (ids: readonly NodeId[]): NodeId[] => ids.filter(id => id !== cc.node)
  switch (cc.type) {
    case 'addVoter':
    case 'promoteLearner':
      return { voters: [...config.voters, cc.node].sort(), learners: without(config.learners) }
    case 'addLearner':
      return { voters: [...config.voters], learners: [...config.learners, cc.node].sort() }
    case 'removeNode':
      return { voters: without(config.voters), learners: without(config.learners) }
    default:
      return assertNever(cc, 'config change')
  }
}

export function isMember (config: ConfigState, id: NodeId): boolean {
  return config.voters.includes(id) || config.learners.includes(id)
}
