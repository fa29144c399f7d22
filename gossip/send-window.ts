/**
 * Backpressure for publishing on gossipsub, which has none: a publish
 * appends to each peer's stream buffer whatever its size, and libp2p aborts
 * a stream whose buffer passes `maxOutboundBufferSize` (node.ts), losing
 * everything queued on it. The services repair that (anti-entropy, the
 * events' head check), but only seconds later and at a cost, so a receiver
 * that is merely slower than a publishing flood lost updates for no reason.
 *
 * Before a batch is handed to gossipsub, the channel waits here while any
 * peer's gossipsub stream holds more than `highWaterBytes` it could not
 * write. A stream that has stayed over the mark for `stallMs` is left out:
 * a paused or cut-off member must not hold every publisher back for longer
 * than that. Its stream overflows and is reopened and repaired as before
 * (gossip-links.ts); once it drains below the mark it counts again.
 */
import type { Stream } from '@libp2p/interface'

/** Where the window finds the outbound gossipsub streams (the mesh's libp2p, or a test's). */
export interface GossipStreams {
  outbound(): Iterable<Stream>
}

export interface SendWindowOptions {
  readonly streams: GossipStreams
  /** Unsent bytes on one stream above which publishing waits. */
  readonly highWaterBytes: number
  /** How long a stream may stay over the mark and still hold publishing back. */
  readonly stallMs: number
  readonly now?: () => number
}

export class SendWindow {
  private readonly opts: SendWindowOptions
  private readonly now: () => number
  /** When each stream was first seen over the mark (cleared once it is under). */
  private readonly overSince = new WeakMap<Stream, number>()
  private waits = 0

  constructor (opts: SendWindowOptions) {
    this.opts = opts
    this.now = opts.now ?? (() => performance.now())
  }

  /** How many times publishing waited for a stream to drain. */
  get waited (): number {
    return this.waits
  }

  /** Resolves once no stream that is not stalled is over the mark. */
  async open (): Promise<void> {
    for (;;) {
      const full = this.fullStream()
      if (full === null) return
      this.waits++
      const left = this.opts.stallMs - (this.now() - (this.overSince.get(full) ?? this.now()))
      // A stream that closes meanwhile rejects onDrain: look again either way.
      await full.onDrain({ signal: AbortSignal.timeout(Math.max(1, Math.ceil(left))) }).catch(() => {})
    }
  }

  /**
   * A stream over the mark and not stalled, or null. Bytes stay in a
   * stream's buffer only while its transport asked it to wait for a drain,
   * which is what onDrain then waits for.
   */
  private fullStream (): Stream | null {
    const now = this.now()
    let found: Stream | null = null
    for (const s of this.opts.streams.outbound()) {
      if (s.status !== 'open' || !s.writableNeedsDrain || s.writeBufferLength <= this.opts.highWaterBytes) {
        this.overSince.delete(s)
        continue
      }
      const since = this.overSince.get(s)
      if (since === undefined) this.overSince.set(s, now)
      if (since === undefined || now - since < this.opts.stallMs) found ??= s
    }
    return found
  }
}
