/**
 * The counters the cpu benchmark reads from a kv-node process over its IPC
 * channel (bench/procs/cpu-probe.ts, and kv-node's own transport stats when
 * the revision has them), and what two readings say per committed entry.
 */
import type { RaftTransportStats } from '../gossip/raft-transport.js'
import type { LocalNode } from '../testkit/local-cluster.js'
import type { ProbeSample } from './procs/cpu-probe.js'

export interface NodeCounters {
  readonly probe: ProbeSample
  /** null for a revision whose kv-node does not answer `kv-node:stats`. */
  readonly transport: RaftTransportStats | null
}

export interface PerEntry {
  /** Event-loop busy time (performance.eventLoopUtilization().active) per entry. */
  readonly busyUs: number
  /** Event-loop utilisation over the block. */
  readonly elu: number
  readonly userUs: number
  readonly systemUs: number
  readonly entriesPerFsync: number | null
  readonly msgsOut: number | null
  readonly msgsIn: number | null
  /** Mesh socket bytes (encrypted, framed, gossip included). */
  readonly bytesOut: number
  readonly bytesIn: number
}

let nextId = 1

/** One IPC request and its answer (same `type` and `id`), or a timeout. */
export async function ask (n: LocalNode, type: string, fields: Record<string, unknown> = {}, timeoutMs = 5000): Promise<Record<string, any>> {
  const proc = n.proc
  if (proc === null) throw new Error(`${n.id} is not running`)
  const id = nextId++
  return await new Promise((resolve, reject) => {
    const onMessage = (m: any): void => {
      if (m?.type !== type || m.id !== id) return
      done()
      if (typeof m.error === 'string') reject(new Error(`${n.id}: ${m.error as string}`))
      else resolve(m)
    }
    const timer = setTimeout(() => { done(); reject(new Error(`${n.id} did not answer ${type} within ${timeoutMs} ms`)) }, timeoutMs)
    const done = (): void => { clearTimeout(timer); proc.off('message', onMessage) }
    proc.on('message', onMessage)
    proc.send({ type, id, ...fields })
  })
}

/** Whether this node's kv-node answers `kv-node:stats` (revisions before the cpu bench do not). */
export async function hasTransportStats (n: LocalNode): Promise<boolean> {
  try {
    await ask(n, 'kv-node:stats', {}, 2000)
    return true
  } catch {
    return false
  }
}

export async function readCounters (n: LocalNode, withTransport: boolean): Promise<NodeCounters> {
  const [probe, stats] = await Promise.all([
    ask(n, 'cpu-probe', { op: 'sample' }),
    withTransport ? ask(n, 'kv-node:stats') : null
  ])
  return { probe: probe as unknown as ProbeSample, transport: stats === null ? null : stats.transport as RaftTransportStats }
}

const r1 = (x: number): number => Math.round(x * 10) / 10
const r3 = (x: number): number => Math.round(x * 1000) / 1000

export function perEntry (a: NodeCounters, b: NodeCounters, entries: number): PerEntry {
  const d = (f: (p: ProbeSample) => number): number => f(b.probe) - f(a.probe)
  const active = d(p => p.eluActiveMs)
  const fsyncs = d(p => p.fsyncs)
  const t = a.transport !== null && b.transport !== null ? { out: b.transport.sent - a.transport.sent, in: b.transport.received - a.transport.received } : null
  return {
    busyUs: r1(active * 1000 / entries),
    elu: r3(active / (active + d(p => p.eluIdleMs))),
    userUs: r1(d(p => p.userUs) / entries),
    systemUs: r1(d(p => p.systemUs) / entries),
    entriesPerFsync: fsyncs === 0 ? null : r1(entries / fsyncs),
    msgsOut: t === null ? null : r3(t.out / entries),
    msgsIn: t === null ? null : r3(t.in / entries),
    bytesOut: r1(d(p => p.meshBytesOut) / entries),
    bytesIn: r1(d(p => p.meshBytesIn) / entries)
  }
}
