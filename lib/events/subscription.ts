/**
 * One subscriber: its pattern, its handler, and a bounded queue between
 * them. Events are handed to the handler one at a time, in the order they
 * were accepted (so per-publisher order holds for every subscriber), and a
 * slow handler does not slow the others or the node: when its queue is
 * full, further events are dropped for it alone and reported.
 */
import type { Logger } from '../../gossip/logger.js'
import { errorFields } from '../../gossip/logger.js'

/** An event as a subscriber sees it. */
export interface ClusterEvent<T = unknown> {
  readonly topic: string
  readonly payload: T
  /** Node id of the publisher (authenticated). */
  readonly publisher: string
  /** The publisher's sequence number (per start of the publisher); for ordered events, the log index. */
  readonly seq: number
}

export type EventHandler<T = unknown> = (event: ClusterEvent<T>) => void | Promise<void>

export class Subscription {
  readonly pattern: string
  readonly matches: (topic: string) => boolean
  private readonly handler: EventHandler
  private readonly maxQueue: number
  private readonly log: Logger
  private readonly queue: ClusterEvent[] = []
  private running = false
  closed = false
  handlerErrors = 0

  constructor (pattern: string, matches: (topic: string) => boolean, handler: EventHandler, maxQueue: number, log: Logger) {
    this.pattern = pattern
    this.matches = matches
    this.handler = handler
    this.maxQueue = maxQueue
    this.log = log
  }

  /** Queues an event; false if the queue is full (the event is dropped for this subscriber). */
  offer (event: ClusterEvent): boolean {
    if (this.closed) return true
    if (this.queue.length >= this.maxQueue) return false
    this.queue.push(event)
    if (!this.running) {
      this.running = true
      queueMicrotask(() => { this.drain().catch(() => {}) })
    }
    return true
  }

  private async drain (): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      const event = this.queue.shift() as ClusterEvent
      try {
        await this.handler(event)
      } catch (err) {
        // A throwing handler must not stop the events after it.
        this.handlerErrors++
        this.log.warn({ pattern: this.pattern, topic: event.topic, publisher: event.publisher, seq: event.seq, ...errorFields(err) }, 'event handler threw')
      }
    }
    this.running = false
  }
}
