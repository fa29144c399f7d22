/**
 * A bounded record of what happened to the cluster as this node saw it:
 * leader changes, members coming and going, panics, lock grants and expired
 * sessions. The dashboard shows it so that an operator who opens the page
 * after a fault can still read what the fault did.
 */
import { EventEmitter } from 'node:events'

export type TimelineEvent =
  | { readonly kind: 'leader', readonly leader: string | null, readonly term: number }
  | { readonly kind: 'member-up', readonly member: string }
  | { readonly kind: 'member-down', readonly member: string, readonly reason: 'left' | 'failed' }
  | { readonly kind: 'panic', readonly reason: string }
  | { readonly kind: 'lock-granted', readonly lockKind: string, readonly name: string, readonly node: string | null, readonly fence: string }
  | { readonly kind: 'session-ended', readonly node: string, readonly reason: string }

/** `seq` increases by one per entry, so a reconnecting reader can ask for what it missed. */
export type TimelineEntry = TimelineEvent & { readonly seq: number, readonly at: number }

export class Timeline extends EventEmitter<{ entry: [TimelineEntry] }> {
  /** Tells this node's sequence apart from the one before a restart, which starts again at 1. */
  readonly epoch = Date.now().toString(36)
  private readonly entries: TimelineEntry[] = []
  private seq = 0

  constructor (private readonly capacity: number, private readonly now: () => number = Date.now) {
    super()
  }

  record (e: TimelineEvent): void {
    const entry = { ...e, seq: ++this.seq, at: this.now() }
    this.entries.push(entry)
    if (this.entries.length > this.capacity) this.entries.shift()
    this.emit('entry', entry)
  }

  /** The kept entries after `seq` (all of them for 0), oldest first. */
  since (seq: number): TimelineEntry[] {
    return this.entries.filter(e => e.seq > seq)
  }
}
