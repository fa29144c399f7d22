/**
 * Per-publisher order for events received: each publisher's events are
 * handled one after another (a chain per publisher), and one that skips
 * ahead of the next expected sequence number first waits for the missing
 * ones to be fetched from the publisher's buffer. Later events of that
 * publisher queue behind the repair, so order holds; other publishers are
 * not held up. What the buffer no longer has is reported as a gap.
 *
 * Where a publisher's sequence starts for this node is its last sequence
 * number when it saw this node subscribe (see head()); failing that, the
 * first of its events seen. Events from before are not replayed. An
 * event of a newer incarnation (the publisher restarted) starts again from
 * 1, so the new start's first events are fetched if they were missed.
 */
import type { Logger } from '../../gossip/logger.js'
import { errorFields } from '../../gossip/logger.js'
import type { EventBody, FetchRequest, FetchResponse, Head } from './event-codec.js'
import { withRetries } from './retry.js'

export interface InboundOptions {
  /** Fetches events from the publisher's buffer (a direct call). */
  readonly fetch: (publisher: string, req: FetchRequest) => Promise<FetchResponse>
  /** Decodes and authenticates a fetched event; null drops it. */
  readonly open: (publisher: string, event: Uint8Array) => Promise<EventBody | null>
  readonly deliver: (publisher: string, body: EventBody) => void
  readonly gap: (publisher: string, from: number, to: number) => void
  readonly log: Logger
  /** Tries of a failing fetch before its range is reported lost. Default 6. */
  readonly fetchAttempts?: number
  /** Wait before the second try, doubling after each. Default 100 ms (about 3 s over 6 tries). */
  readonly fetchRetryMs?: number
}

interface Stream {
  readonly incarnation: string
  /** The next sequence number to deliver. */
  next: number
}

export class InboundOrder {
  private readonly opts: InboundOptions
  private readonly streams = new Map<string, Stream>()
  private readonly chains = new Map<string, Promise<void>>()
  duplicates = 0
  repaired = 0

  constructor (opts: InboundOptions) {
    this.opts = opts
  }

  /** An event off gossip: `open` yields its authenticated body (or null), in the publisher's turn. */
  receive (publisher: string, open: () => Promise<EventBody | null>): void {
    this.inTurn(publisher, async () => {
      const body = await open()
      if (body !== null) await this.accept(publisher, body)
    })
  }

  /**
   * The publisher's last sequence number, asked for on (re)connecting. Its
   * events received meanwhile wait for the answer: for a publisher not
   * known yet, the answer is where its sequence starts for this node (so
   * events after it are fetched if an early one was lost or overtaken);
   * for a known one, what was missed while apart is fetched. A null answer
   * (the call failed) changes nothing.
   */
  head (publisher: string, answer: Promise<Head | null>): void {
    this.inTurn(publisher, async () => {
      const head = await answer
      if (head === null) return
      let st = this.streams.get(publisher)
      if (st === undefined) {
        this.streams.set(publisher, st = { incarnation: head.incarnation, next: head.since + 1 })
        if (head.seq >= st.next) await this.repair(publisher, st, head.seq)
        return
      }
      if (head.incarnation < st.incarnation) return
      if (head.incarnation > st.incarnation) this.streams.set(publisher, st = { incarnation: head.incarnation, next: 1 })
      if (head.seq >= st.next) await this.repair(publisher, st, head.seq)
    })
  }

  /** Publishers whose sequence this node follows. */
  get publishers (): number {
    return this.streams.size
  }

  private inTurn (publisher: string, task: () => Promise<void>): void {
    const next = (this.chains.get(publisher) ?? Promise.resolve()).then(task).catch(err => {
      this.opts.log.warn({ publisher, ...errorFields(err) }, 'handling an event failed')
    })
    this.chains.set(publisher, next)
    next.finally(() => { if (this.chains.get(publisher) === next) this.chains.delete(publisher) }).catch(() => {})
  }

  private async accept (publisher: string, body: EventBody): Promise<void> {
    let st = this.streams.get(publisher)
    if (st === undefined) this.streams.set(publisher, st = { incarnation: body.incarnation, next: body.seq })
    else if (body.incarnation !== st.incarnation) {
      if (body.incarnation < st.incarnation) {
        this.duplicates++
        return
      }
      this.streams.set(publisher, st = { incarnation: body.incarnation, next: 1 })
    }
    if (body.seq < st.next) {
      this.duplicates++
      return
    }
    if (body.seq > st.next) await this.repair(publisher, st, body.seq - 1)
    this.opts.deliver(publisher, body)
    st.next = body.seq + 1
  }

  /**
   * A fetch fails mostly because the publisher's connection is being
   * replaced (this node was paused, or cut off, and is back): the events
   * are still in its buffer, so try again for a few seconds before calling
   * them lost. Later events of this publisher wait meanwhile, in order.
   */
  private async fetch (publisher: string, req: FetchRequest): Promise<FetchResponse> {
    return await withRetries(async () => await this.opts.fetch(publisher, req), this.opts.fetchAttempts ?? 6, this.opts.fetchRetryMs ?? 100, (err, attempt) => {
      this.opts.log.debug({ publisher, attempt, ...errorFields(err) }, 'fetching missed events failed; trying again')
    })
  }

  /** Fetches st.next..to from the publisher and delivers them; reports what it cannot get. */
  private async repair (publisher: string, st: Stream, to: number): Promise<void> {
    let from = st.next
    try {
      while (from <= to) {
        const res = await this.fetch(publisher, { incarnation: st.incarnation, from, to })
        // Another incarnation answered: the publisher restarted and what was missed is gone with it.
        if (res.incarnation !== st.incarnation) break
        let progressed = false
        for (const e of res.events) {
          const b = await this.opts.open(publisher, e)
          if (b === null || b.incarnation !== st.incarnation || b.seq < from || b.seq > to) continue
          // The buffer starts (or resumes) after `from`: those are gone.
          if (b.seq > from) this.opts.gap(publisher, from, b.seq - 1)
          this.opts.deliver(publisher, b)
          this.repaired++
          from = b.seq + 1
          progressed = true
        }
        if (!progressed) break
      }
    } catch (err) {
      this.opts.log.warn({ publisher, from, to, ...errorFields(err) }, 'could not fetch missed events from their publisher')
    }
    if (from <= to) this.opts.gap(publisher, from, to)
    st.next = to + 1
  }
}
