/**
 * The application's replicated state machine (hashicorp/raft's FSM).
 */
import type { Entry } from '../types.js'

export interface StateMachine<R = unknown> {
  /**
   * Applies one committed Normal entry, in log order, exactly once per
   * incarnation of the node. Must be deterministic: every node applies the
   * same entries and must reach the same state. The result goes to the
   * proposer if it is waiting on this node.
   */
  apply(entry: Entry): R
  /** Serialises the whole state as of the last applied entry. */
  snapshot(): Uint8Array | Promise<Uint8Array>
  /** Replaces the whole state with a snapshot's. */
  restore(data: Uint8Array): void | Promise<void>
}
