/**
 * What the core hands its caller: the Ready batch and the small state
 * records inside it (see core.ts for the order the caller must follow).
 */
import type { Message } from './messages.js'
import type { ConfigState, Entry, HardState, NodeId, Snapshot } from '../types.js'

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader'

/** A confirmed read: wait until `index` is applied, then read locally. index -1 means refused. */
export interface ReadState {
  readonly ctx: string
  readonly index: number
}

export interface SoftState {
  readonly role: Role
  readonly leader: NodeId | null
  readonly term: number
}

/**
 * Work for the caller, to be done in this order: persist `snapshot`,
 * `entries` and `hardState` (one fsync), then send `messages`, then restore
 * `snapshot` into the state machine and apply `committedEntries`, then call
 * advance(ready).
 */
export interface Ready {
  readonly softState: SoftState
  readonly hardState: HardState | null
  readonly entries: readonly Entry[]
  readonly snapshot: Snapshot | null
  readonly committedEntries: readonly Entry[]
  readonly messages: readonly Message[]
  readonly readStates: readonly ReadState[]
}

export interface RaftStatus {
  id: NodeId
  role: Role
  term: number
  leader: NodeId | null
  commitIndex: number
  appliedIndex: number
  lastIndex: number
  snapshotIndex: number
  config: ConfigState
  /** Leader only: each follower's replication state. */
  progress: Record<NodeId, { match: number, next: number, state: string }>
}

export function softStateEqual (a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leader === b.leader && a.term === b.term
}
