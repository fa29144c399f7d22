/**
 * How Raft messages travel between nodes. The driver only needs to send a
 * batch and to be told about arrivals; delivery is best-effort (Raft
 * retries), so a transport may drop, delay or reorder.
 */
import type { Message } from '../core/messages.js'
import type { NodeId } from '../types.js'

export interface Transport {
  /** Sends messages to their `to` nodes. Never throws for an unreachable peer. */
  send(messages: readonly Message[]): void
  /** Installs the one handler for messages addressed to this node. */
  onMessage(handler: (m: Message) => void): void
  /** Stops delivering in both directions. */
  close(): Promise<void>
}

/**
 * An in-process network for tests and the in-memory benchmark: delivery on
 * a later turn of the event loop, with partitions and drops under test
 * control.
 */
export class MemoryNetwork {
  private readonly handlers = new Map<NodeId, (m: Message) => void>()
  private readonly cut = new Set<string>()
  /** Probability of dropping any one message. */
  dropRate = 0
  private readonly random: () => number

  constructor (random: () => number = Math.random) {
    this.random = random
  }

  /** A transport for node `id`. */
  join (id: NodeId): Transport {
    return {
      send: (messages) => {
        for (const m of messages) this.deliver(m)
      },
      onMessage: (handler) => { this.handlers.set(id, handler) },
      close: async () => { this.handlers.delete(id) }
    }
  }

  private deliver (m: Message): void {
    if (this.cut.has(`${m.from}>${m.to}`)) return
    if (this.dropRate > 0 && this.random() < this.dropRate) return
    setImmediate(() => {
      if (this.cut.has(`${m.from}>${m.to}`)) return
      this.handlers.get(m.to)?.(m)
    })
  }

  /** Cuts both directions between `id` and every other node. */
  isolate (id: NodeId): void {
    for (const other of this.handlers.keys()) {
      if (other === id) continue
      this.cut.add(`${id}>${other}`)
      this.cut.add(`${other}>${id}`)
    }
  }

  /** Restores every link. */
  heal (): void {
    this.cut.clear()
  }
}
