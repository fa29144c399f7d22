/**
 * Keeps dialing the peers this node should be connected to: the bootstrap
 * addresses (for as long as the node runs), and members that failed and
 * peers other members told of (for a bounded time, so a node that went
 * away for good stops costing dials).
 * Each target backs off exponentially with jitter while it stays out of
 * reach, and is left alone while it is a live member.
 *
 * The backoff is a pure function so it can be table-tested; the timers live
 * in the class.
 */
import type { Logger } from './logger.js'
import { errorFields } from './logger.js'

/**
 * Delay before attempt `attempt` (0-based): `base * 2^attempt` capped at
 * `max`, then scaled into [50%, 100%] by `random` so that nodes that lost a
 * peer together do not redial it in lockstep.
 */
export function backoffMs (attempt: number, baseMs: number, maxMs: number, random: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30))
  return Math.round(ceiling * (0.5 + random / 2))
}

export interface RedialerOptions {
  /** Dials an address or a known peer; resolves with the remote peer id. */
  readonly dial: (target: { readonly addrs: readonly string[], readonly peerId: string | null }) => Promise<string>
  /** True while there is nothing to do for the peer (a live member, or a connection whose handshake is under way). */
  readonly satisfied: (peerId: string) => boolean
  readonly baseMs: number
  readonly maxMs: number
  readonly logger: Logger
  readonly random?: () => number
  readonly clock?: () => number
}

interface Target {
  readonly key: string
  readonly addrs: readonly string[]
  peerId: string | null
  attempt: number
  /** Clock ms after which the target is dropped; null keeps it forever (bootstrap). */
  readonly until: number | null
  timer: NodeJS.Timeout | null
  dialing: boolean
}

export class Redialer {
  private readonly targets = new Map<string, Target>()
  private readonly opts: RedialerOptions
  private readonly random: () => number
  private readonly clock: () => number
  private stopped = false

  constructor (opts: RedialerOptions) {
    this.opts = opts
    this.random = opts.random ?? Math.random
    this.clock = opts.clock ?? Date.now
  }

  /** A bootstrap address, dialed (first after `delayMs`) whenever its peer is not a live member. */
  addBootstrap (addr: string, delayMs = 0): void {
    const peerId = peerIdOfAddr(addr)
    this.add({ key: `addr:${addr}`, addrs: [addr], peerId, attempt: 0, until: null, timer: null, dialing: false }, delayMs)
  }

  /** A failed member: redial its addresses for up to `forMs`. */
  addPeer (peerId: string, addrs: readonly string[], forMs: number): void {
    if (addrs.length === 0) return
    this.removePeer(peerId)
    this.learn(peerId, addrs, forMs, backoffMs(0, this.opts.baseMs, this.opts.maxMs, this.random()))
  }

  /**
   * A peer another member told of: dialed (first after `delayMs`) until it
   * is a member, for up to `forMs`. One dial was not enough: if it failed,
   * the two nodes stayed unconnected for good, and a 3-node Raft group
   * whose leader then died had no quorum (seen in `kv-cluster.test.ts`).
   * A peer already targeted keeps its backoff.
   */
  learn (peerId: string, addrs: readonly string[], forMs: number, delayMs: number): void {
    if (addrs.length === 0) return
    this.add({ key: `peer:${peerId}`, addrs, peerId, attempt: 0, until: this.clock() + forMs, timer: null, dialing: false }, delayMs)
  }

  /** Stops redialing a peer (it came back, or it left cleanly). */
  removePeer (peerId: string): void {
    this.remove(`peer:${peerId}`)
  }

  /** Tries every unsatisfied target now, forgetting their backoff (after a partition heals). */
  redialNow (): void {
    for (const t of this.targets.values()) {
      t.attempt = 0
      this.schedule(t, 0)
    }
  }

  stop (): void {
    this.stopped = true
    for (const t of this.targets.values()) if (t.timer !== null) clearTimeout(t.timer)
    this.targets.clear()
  }

  private add (t: Target, delay: number): void {
    if (this.stopped || this.targets.has(t.key)) return
    this.targets.set(t.key, t)
    this.schedule(t, delay)
  }

  private remove (key: string): void {
    const t = this.targets.get(key)
    if (t === undefined) return
    if (t.timer !== null) clearTimeout(t.timer)
    this.targets.delete(key)
  }

  private schedule (t: Target, delay: number): void {
    if (this.stopped) return
    if (t.timer !== null) clearTimeout(t.timer)
    t.timer = setTimeout(() => { t.timer = null; void this.attempt(t) }, delay)
    t.timer.unref()
  }

  private async attempt (t: Target): Promise<void> {
    if (this.stopped || t.dialing || this.targets.get(t.key) !== t) return
    if (t.until !== null && this.clock() > t.until) {
      this.opts.logger.info({ peerId: t.peerId }, 'giving up redialing a failed member')
      this.remove(t.key)
      return
    }
    if (t.peerId !== null && this.opts.satisfied(t.peerId)) {
      // Connected: check again later, and start from a short delay when it drops.
      t.attempt = 0
      this.schedule(t, this.opts.maxMs)
      return
    }
    t.dialing = true
    try {
      t.peerId = await this.opts.dial({ addrs: t.addrs, peerId: t.peerId })
    } catch (err) {
      this.opts.logger.debug({ addrs: t.addrs, attempt: t.attempt, ...errorFields(err) }, 'dial failed')
    } finally {
      t.dialing = false
    }
    // A dial can succeed and still be refused by the handshake: only membership resets the backoff.
    t.attempt++
    this.schedule(t, backoffMs(t.attempt, this.opts.baseMs, this.opts.maxMs, this.random()))
  }
}

/** The `/p2p/<id>` peer id at the end of a multiaddr string, if any. */
export function peerIdOfAddr (addr: string): string | null {
  const m = /\/p2p\/([^/]+)\/?$/.exec(addr)
  return m === null ? null : m[1]
}
