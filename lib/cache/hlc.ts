/**
 * Hybrid logical clocks (Kulkarni et al., "Logical Physical Clocks", 2014):
 * a timestamp is wall-clock milliseconds plus a counter, so it stays close
 * to real time yet never goes backwards and always exceeds every timestamp
 * this node has seen. Ties between nodes are broken by node id, which makes
 * the order total: last-writer-wins needs every node to pick the same
 * winner.
 */

export interface Hlc {
  /** Wall-clock milliseconds. */
  readonly ms: number
  /** Orders events within one millisecond. */
  readonly c: number
  /** The node that made the timestamp. */
  readonly node: string
}

/** Total order: milliseconds, then counter, then node id. */
export function compareHlc (a: Hlc, b: Hlc): number {
  if (a.ms !== b.ms) return a.ms < b.ms ? -1 : 1
  if (a.c !== b.c) return a.c < b.c ? -1 : 1
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0
}

export class HybridClock {
  private ms = 0
  private c = 0
  private readonly node: string
  private readonly wall: () => number

  constructor (node: string, wall: () => number) {
    this.node = node
    this.wall = wall
  }

  /** A timestamp for a local event, greater than any made or observed so far. */
  now (): Hlc {
    const w = this.wall()
    if (w > this.ms) {
      this.ms = w
      this.c = 0
    } else {
      this.c++
    }
    return { ms: this.ms, c: this.c, node: this.node }
  }

  /** Takes in a remote timestamp, so that later local ones are greater than it. */
  observe (remote: Hlc): void {
    const w = this.wall()
    const ms = Math.max(w, this.ms, remote.ms)
    if (ms === this.ms && ms === remote.ms) this.c = Math.max(this.c, remote.c) + 1
    else if (ms === this.ms) this.c++
    else if (ms === remote.ms) this.c = remote.c + 1
    else this.c = 0
    this.ms = ms
  }
}
