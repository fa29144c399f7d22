/**
 * When each process of a recorded history was SIGSTOPped, for the checkers'
 * exception for frozen holders (lock-history.ts, queue-history.ts).
 *
 * The harness records `paused` just before it sends SIGSTOP, and the signal
 * takes a moment to land: a child may still report a grant or a job start
 * stamped a few microseconds after `paused`, and then freeze holding it.
 * So a holding counts as frozen when its process was paused at any moment
 * of it, not only when the pause began inside it.
 */
import type { HistoryEntry } from '../cluster-processes.js'

export class Pauses {
  /** Per node, its pauses as [from, to]; `to` is Infinity until it is resumed, killed or exits. */
  private readonly byNode = new Map<number, Array<[number, number]>>()

  /** Feeds one entry, in time order. */
  see (e: HistoryEntry): void {
    const list = this.byNode.get(e.node) ?? []
    const last = list[list.length - 1]
    if (e.type === 'paused') {
      list.push([e.at, Infinity])
      this.byNode.set(e.node, list)
    } else if ((e.type === 'resumed' || e.type === 'killed' || e.type === 'exited') && last !== undefined && last[1] === Infinity) {
      last[1] = e.at
    }
  }

  /** Whether `node` was paused at any moment from `from` to `to`. */
  during (node: number, from: number, to: number): boolean {
    return (this.byNode.get(node) ?? []).some(([p, r]) => p <= to && r >= from)
  }
}
