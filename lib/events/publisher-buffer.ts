/**
 * The events this node published lately, kept for subscribers that missed
 * some (a lost gossip message, a partition) to fetch over a direct call.
 * Bounded by count and by bytes: the oldest go first, and a subscriber
 * asking for those is told they are gone (a `gap`).
 */

export class PublisherBuffer {
  private readonly events: Uint8Array[] = []
  /** Sequence number of events[0]. */
  private first = 1
  private bytes = 0
  private readonly maxEvents: number
  private readonly maxBytes: number

  constructor (maxEvents: number, maxBytes: number) {
    this.maxEvents = maxEvents
    this.maxBytes = maxBytes
  }

  /** Adds the event with the next sequence number (the caller numbers them consecutively from 1). */
  push (seq: number, event: Uint8Array): void {
    if (this.events.length === 0) this.first = seq
    this.events.push(event)
    this.bytes += event.byteLength
    while (this.events.length > this.maxEvents || (this.bytes > this.maxBytes && this.events.length > 1)) {
      this.bytes -= (this.events.shift() as Uint8Array).byteLength
      this.first++
    }
  }

  /** Consecutive events from max(from, oldest held) up to `to`, at most `budgetBytes` (at least one). */
  range (from: number, to: number, budgetBytes: number): Uint8Array[] {
    const out: Uint8Array[] = []
    let bytes = 0
    for (let s = Math.max(from, this.first); s <= to && s < this.first + this.events.length; s++) {
      const e = this.events[s - this.first]
      if (out.length > 0 && bytes + e.byteLength > budgetBytes) break
      out.push(e)
      bytes += e.byteLength
    }
    return out
  }
}
