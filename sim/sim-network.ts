/**
 * The simulated network between nodes: each message is delayed by a random
 * number of milliseconds (so messages reorder), and may be dropped,
 * duplicated, or blocked by a partition (both ways or one way). A crashed
 * incarnation neither sends nor receives; its restarted successor takes over
 * its address.
 */
import type { Message } from '../raft/core/messages.js'
import type { Transport } from '../raft/driver/transport.js'
import type { NodeId } from '../raft/types.js'
import type { Prng } from './prng.js'
import type { Scheduler } from './sim-clock.js'

export interface NetworkStats {
  messages: number
  dropped: number
  duplicated: number
}

interface Endpoint {
  readonly alive: () => boolean
  handler: ((m: Message) => void) | null
}

export class SimNetwork {
  /** Blocked directions, as `from>to`. */
  blocked = new Set<string>()
  dropRate = 0
  dupRate = 0
  readonly stats: NetworkStats = { messages: 0, dropped: 0, duplicated: 0 }
  private readonly endpoints = new Map<NodeId, Endpoint>()

  constructor (
    private readonly scheduler: Scheduler,
    private readonly rng: Prng,
    private readonly maxDelayMs: number,
    /** Sees every message as it leaves, before the network's faults. */
    private readonly onSend: (m: Message) => void
  ) {}

  /** The transport of one incarnation of node `id`. */
  join (id: NodeId, alive: () => boolean): Transport {
    const endpoint: Endpoint = { alive, handler: null }
    this.endpoints.set(id, endpoint)
    return {
      send: messages => {
        if (!alive()) return
        for (const m of messages) this.route(m)
      },
      onMessage: handler => { endpoint.handler = handler },
      close: async () => { endpoint.handler = null }
    }
  }

  /** True when `from` can currently reach `to`. */
  reaches (from: NodeId, to: NodeId): boolean {
    return !this.blocked.has(`${from}>${to}`)
  }

  private route (m: Message): void {
    this.onSend(m)
    this.stats.messages++
    if (!this.reaches(m.from, m.to) || this.rng.chance(this.dropRate)) {
      this.stats.dropped++
      return
    }
    this.scheduler.at(this.scheduler.now + this.rng.int(1, this.maxDelayMs), () => { this.deliver(m) })
    if (this.rng.chance(this.dupRate)) {
      this.stats.duplicated++
      this.scheduler.at(this.scheduler.now + this.rng.int(1, 3 * this.maxDelayMs), () => { this.deliver(m) })
    }
  }

  private deliver (m: Message): void {
    const to = this.endpoints.get(m.to)
    if (to === undefined || to.handler === null || !to.alive() || !this.reaches(m.from, m.to)) {
      this.stats.dropped++
      return
    }
    to.handler(m)
  }
}
