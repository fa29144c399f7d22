/**
 * Data types shared by the Raft core, its storage and its driver.
 * Everything here is plain data so it can be persisted, sent over any
 * transport and compared in tests.
 */

/** A node's identity in the cluster. */
export type NodeId = string

/** Kinds of log entries. */
export const EntryType = {
  /** Application command. */
  Normal: 0,
  /** A membership change (data is an encoded {@link ConfChange}). */
  Config: 1,
  /** Empty entry appended by every new leader (Raft thesis §3.6.2). */
  Noop: 2
} as const
export type EntryType = (typeof EntryType)[keyof typeof EntryType]

/** One entry of the replicated log. */
export interface Entry {
  readonly index: number
  readonly term: number
  readonly type: EntryType
  readonly data: Uint8Array
}

/** State that must be durable before a node answers a vote or an append. */
export interface HardState {
  readonly term: number
  readonly vote: NodeId | null
  readonly commit: number
}

/** The cluster configuration: who votes and who only receives the log. */
export interface ConfigState {
  readonly voters: readonly NodeId[]
  readonly learners: readonly NodeId[]
}

/** One membership change, carried in a Config entry. */
export type ConfChange =
  | { readonly type: 'addVoter', readonly node: NodeId }
  | { readonly type: 'removeNode', readonly node: NodeId }
  | { readonly type: 'addLearner', readonly node: NodeId }
  | { readonly type: 'promoteLearner', readonly node: NodeId }

/** What a snapshot covers: every entry up to and including `index`. */
export interface SnapshotMeta {
  readonly index: number
  readonly term: number
  readonly config: ConfigState
}

/** An application snapshot together with the log position it replaces. */
export interface Snapshot {
  readonly meta: SnapshotMeta
  readonly data: Uint8Array
}

export const emptyHardState: HardState = Object.freeze({ term: 0, vote: null, commit: 0 })

/** True when two hard states hold the same values. */
export function hardStateEqual (a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit
}
