/**
 * The part of a queue-bench child process that does not depend on the
 * queue under test: it answers the bench's requests over IPC (see
 * bench/queue-workload.ts), runs the producer loops, and records every
 * job start and ack on the machine-wide clock. A child supplies a
 * {@link QueueClient} (bench/procs/queue-peer.ts for raftmesh,
 * bench/procs/bullmq-peer.ts for BullMQ) and calls {@link serveQueueBench}.
 *
 * Requests ({id, type, ...} → {id, ...}):
 *   status                                      the client's own view (leader, session ...)
 *   enqueue {queue, count, inFlight, maxMs, ratePerSecond?, payloadBytes, prefix}
 *                                               producers; resolves with {enqueued, errors, firstAt, lastAt,
 *                                               ackMs: each paced enqueue's call-to-answer time}
 *   work {queue, concurrency, visibilityMs, hold, stalledIntervalMs?}
 *                                               starts a worker on `queue`
 *   progress {queue}                            {started, acked, lastAckAt}
 *   report {queue}                              {latencyMs: Float64Array, starts: [key, at][]}
 *   stop-work {queue}                           stops that worker
 */
import { machineNow } from '../../testkit/cluster-node-protocol.js'
import { exitWithParent } from './lifecycle.js'

/** What every bench item carries: a key, and when its producer called enqueue. */
export interface BenchPayload {
  readonly k: string
  readonly t: number
  readonly pad: string
}

export interface WorkOptions {
  readonly concurrency: number
  /** raftmesh: the claim's visibilityMs; BullMQ: the job lock's lockDuration. */
  readonly visibilityMs: number
  /** Jobs never finish (until the worker stops): the kill row's victim. */
  readonly hold: boolean
  /** BullMQ only: how often a worker looks for stalled jobs. */
  readonly stalledIntervalMs?: number
}

export interface WorkHooks {
  /** Call as the handler starts. */
  started: (p: BenchPayload) => void
  /** Call once the job's ack is applied (raftmesh) or the job is completed (BullMQ). */
  acked: () => void
}

/** One queue system, as a server process embeds its client. */
export interface QueueClient {
  enqueue: (queue: string, payload: BenchPayload) => Promise<void>
  work: (queue: string, o: WorkOptions, hooks: WorkHooks) => { stop: () => Promise<void> }
  status: () => Promise<object>
  close: () => Promise<void>
}

interface Record_ {
  started: number
  acked: number
  lastAckAt: number
  latencyMs: number[]
  starts: Array<[string, number]>
}

type Request = { id: number, type: string, queue?: string, [k: string]: unknown }

/** Closed loop: `inFlight` producers, each awaiting its enqueue before the next. Open loop with `ratePerSecond`: one enqueue per slot of the schedule, not waiting for earlier ones. */
async function produce (client: QueueClient, r: Request): Promise<object> {
  const queue = r.queue as string
  const count = r.count as number
  const maxMs = r.maxMs as number
  const pad = 'x'.repeat(r.payloadBytes as number)
  const prefix = r.prefix as string
  const rate = r.ratePerSecond as number | undefined
  let next = 0
  let enqueued = 0
  let errors = 0
  let firstError: string | null = null
  let lastAt = 0
  const ackMs: number[] = []
  const firstAt = machineNow()
  const end = firstAt + maxMs
  const one = async (i: number): Promise<void> => {
    try {
      const t = machineNow()
      await client.enqueue(queue, { k: `${prefix}${i}`, t, pad })
      enqueued++
      lastAt = machineNow()
      if (rate !== undefined) ackMs.push(lastAt - t)
    } catch (err) {
      errors++
      firstError ??= String(err)
    }
  }
  if (rate === undefined) {
    await Promise.all(Array.from({ length: r.inFlight as number }, async () => {
      while (next < count && machineNow() < end) await one(next++)
    }))
  } else {
    const running = new Set<Promise<void>>()
    while (next < count && machineNow() < end) {
      const due = firstAt + next * 1000 / rate
      const wait = due - machineNow()
      if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
      const p = one(next++).finally(() => running.delete(p))
      running.add(p)
      // Bounded: a system that falls behind gets at most `inFlight` outstanding enqueues.
      if (running.size >= (r.inFlight as number)) await Promise.race(running)
    }
    await Promise.all(running)
  }
  return { enqueued, errors, firstError, firstAt, lastAt, ackMs: Float64Array.from(ackMs) }
}

export function serveQueueBench (client: QueueClient): void {
  if (process.send === undefined) {
    console.error('a queue bench peer must be spawned with an IPC channel')
    process.exit(2)
  }
  const send = (m: object): void => { if (process.connected) process.send?.(m) }
  const records = new Map<string, Record_>()
  const workers = new Map<string, { stop: () => Promise<void> }>()
  const record = (queue: string): Record_ => {
    let r = records.get(queue)
    if (r === undefined) records.set(queue, r = { started: 0, acked: 0, lastAckAt: 0, latencyMs: [], starts: [] })
    return r
  }

  const handle = async (r: Request): Promise<object> => {
    const queue = r.queue ?? ''
    switch (r.type) {
      case 'status': return await client.status()
      case 'enqueue': return await produce(client, r)
      case 'work': {
        const rec = record(queue)
        workers.set(queue, client.work(queue, r as unknown as WorkOptions, {
          started: p => {
            const at = machineNow()
            rec.started++
            rec.latencyMs.push(at - p.t)
            rec.starts.push([p.k, at])
          },
          acked: () => {
            rec.acked++
            rec.lastAckAt = machineNow()
          }
        }))
        return {}
      }
      case 'progress': {
        const rec = record(queue)
        return { started: rec.started, acked: rec.acked, lastAckAt: rec.lastAckAt }
      }
      case 'report': {
        const rec = record(queue)
        return { latencyMs: Float64Array.from(rec.latencyMs), starts: rec.starts }
      }
      case 'stop-work': {
        const w = workers.get(queue)
        workers.delete(queue)
        await w?.stop()
        return {}
      }
      default: throw new Error(`unknown request ${r.type}`)
    }
  }

  exitWithParent(async () => {
    await Promise.allSettled([...workers.values()].map(async w => { await w.stop() }))
    await client.close()
  })
  process.on('message', (r: Request) => {
    handle(r).then(v => { send({ ...v, id: r.id }) }, (err: unknown) => { send({ id: r.id, error: String(err) }) })
  })
  send({ type: 'ready' })
}
