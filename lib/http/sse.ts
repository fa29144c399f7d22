/**
 * Server-sent events for the dashboard: a `status` snapshot on connecting
 * and then every `statusEveryMs`, and each timeline entry as it happens,
 * with the timeline's epoch and the entry's sequence number as the event
 * id, so that a browser reconnecting with `Last-Event-ID` gets exactly
 * what it missed (as long as the timeline still holds it), and everything
 * if the node restarted meanwhile.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ClusterStatus } from '../status.js'
import type { Timeline, TimelineEntry } from '../timeline.js'

export interface EventStreamSource {
  /** Null once the cluster is stopping. */
  status(): ClusterStatus | null
  readonly timeline: Timeline
}

export interface EventStreamLimits {
  readonly maxStreams: number
  readonly statusEveryMs: number
  /** Bytes queued for one reader before it is cut off (it reconnects and resumes from its last event id). */
  readonly maxBufferedBytes: number
}

const RECONNECT_MS = 2000

export class EventStreams {
  private readonly streams = new Set<ServerResponse>()
  private timer: NodeJS.Timeout | null = null
  private statusQueued = false
  private closed = false
  private readonly onEntry = (e: TimelineEntry): void => {
    const frame = timelineEvent(this.source.timeline.epoch, e)
    for (const res of this.streams) this.write(res, frame)
    this.queueStatus()
  }

  constructor (private readonly source: EventStreamSource, private readonly limits: EventStreamLimits) {}

  get open (): number {
    return this.streams.size
  }

  /** Answers one request: a stream, or 503 when the cluster is stopped or too many streams are open. */
  serve (req: IncomingMessage, res: ServerResponse, refuse: (status: number, reason: string) => void): void {
    const status = this.closed ? null : this.source.status()
    if (status === null) return refuse(503, 'the cluster node is stopped')
    if (this.streams.size >= this.limits.maxStreams) return refuse(503, `too many event streams open (at most ${this.limits.maxStreams})`)
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // Proxies such as nginx buffer responses unless told not to, which would hold every event back.
      'x-accel-buffering': 'no'
    })
    const { timeline } = this.source
    res.write(`retry: ${RECONNECT_MS}\n\n`)
    this.write(res, statusEvent(status))
    for (const e of timeline.since(resumeAfter(req, timeline.epoch))) this.write(res, timelineEvent(timeline.epoch, e))
    this.streams.add(res)
    if (this.streams.size === 1) this.startFeeding()
    res.on('close', () => { this.drop(res) })
  }

  /** Ends every stream; later requests are refused. */
  close (): void {
    this.closed = true
    for (const res of this.streams) res.end()
    this.streams.clear()
    this.stopFeeding()
  }

  private startFeeding (): void {
    this.source.timeline.on('entry', this.onEntry)
    this.timer = setInterval(() => { this.pushStatus() }, this.limits.statusEveryMs)
    this.timer.unref()
  }

  private stopFeeding (): void {
    this.source.timeline.off('entry', this.onEntry)
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  private drop (res: ServerResponse): void {
    if (!this.streams.delete(res)) return
    if (this.streams.size === 0) this.stopFeeding()
  }

  /** Several timeline entries in one turn of the event loop share one status snapshot. */
  private queueStatus (): void {
    if (this.statusQueued) return
    this.statusQueued = true
    setImmediate(() => {
      this.statusQueued = false
      this.pushStatus()
    })
  }

  private pushStatus (): void {
    if (this.streams.size === 0) return
    const status = this.source.status()
    if (status === null) return this.close()
    const frame = statusEvent(status)
    for (const res of this.streams) this.write(res, frame)
  }

  private write (res: ServerResponse, frame: string): void {
    if (res.writableLength > this.limits.maxBufferedBytes) {
      this.drop(res)
      res.destroy()
      return
    }
    res.write(frame)
  }
}

function statusEvent (s: ClusterStatus): string {
  return `event: status\ndata: ${JSON.stringify(s)}\n\n`
}

function timelineEvent (epoch: string, e: TimelineEntry): string {
  return `id: ${epoch}.${e.seq}\nevent: timeline\ndata: ${JSON.stringify(e)}\n\n`
}

/** The sequence number the reader last saw, or 0 when it saw none of this epoch. */
function resumeAfter (req: IncomingMessage, epoch: string): number {
  const [e, seq] = String(req.headers['last-event-id'] ?? '').split('.')
  const n = Number(seq)
  return e === epoch && Number.isSafeInteger(n) ? n : 0
}
