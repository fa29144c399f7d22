/**
 * The event workload of a cluster-node process (see EventWorkload): publish
 * tagged events, some ordered, on this node's topic; receive every node's
 * through one wildcard subscription; report what was published, received,
 * and what the bus said it lost.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Cluster, EventGap, EventOverflow } from '../lib/index.js'
import type { EventWorkload, NodeEventBody, WriteTag } from './cluster-node-protocol.js'

type Report = (event: NodeEventBody) => void

interface Payload {
  readonly tag: WriteTag
  readonly ordered: boolean
}

function errorText (err: unknown): { name: string, message: string } {
  return err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) }
}

/** Runs the workload until `stop`. */
export async function runEventWorkload (cluster: Cluster, workload: string, w: EventWorkload, stop: AbortSignal, report: Report): Promise<void> {
  // Never unsubscribed: events still on their way when the workloads stop are recorded too.
  cluster.events.subscribe<Payload>(`${w.topic}.*`, e => {
    const { tag, ordered } = e.payload
    report({ type: 'event-received', workload, topic: e.topic, publisher: e.publisher, seq: e.seq, tag, ordered })
  })
  cluster.events.on('gap', (g: EventGap) => { report({ type: 'event-gap', workload, publisher: g.publisher, from: g.from, to: g.to }) })
  cluster.events.on('overflow', (o: EventOverflow) => { report({ type: 'event-overflow', workload, publisher: o.publisher, seq: o.seq }) })
  const topic = `${w.topic}.${cluster.id}`
  const start = `${cluster.id}.${process.pid}`
  let n = 0
  while (!stop.aborted) {
    const tag: WriteTag = { w: cluster.id, s: start, n: ++n }
    const ordered = n % w.orderedEvery === 0
    try {
      const { seq } = await cluster.events.publish(topic, { tag, ordered } satisfies Payload, { ordered })
      report({ type: 'event-published', workload, topic, tag, seq, ordered })
    } catch (err) {
      // An ordered event needs a majority; a node cut off says so and goes on.
      report({ type: 'error', op: `publish ${topic} ${ordered ? 'ordered' : ''}`, ...errorText(err) })
    }
    await sleep(w.gapMs, undefined, { signal: stop }).catch(() => {})
  }
  report({ type: 'workload-done', workload, grants: n })
}
