/**
 * What the two kinds of peer of `npm run bench -- cache` / `-- events` share
 * (bench/procs/cache-peer.ts: raftmesh; bench/procs/redis-peer.ts: Redis
 * pub/sub with a local Map): the IPC requests they answer, the pacing of a
 * writer, the recording of arrivals, and the partition phase's writes and
 * digests. A peer only supplies how to write one item of each kind and
 * tells the recorder when one arrives.
 *
 * Every time is {@link machineNow} (the machine's monotonic clock, the same
 * in every process and network namespace), so the bench subtracts a
 * writer's send time from a receiver's arrival time.
 *
 * Requests ({id, type, ...} → {id, ...}):
 *   status                               { ready, ...what the peer adds }
 *   expect {phase, kind, capacity}       record arrivals of items `<phase>:<index>` of this kind
 *   progress                             items of the phase delivered so far
 *   report {count}                       arrivals (Float64Array, NaN = not delivered), last arrival, stats
 *   send {phase, kind, mode: 'paced', count, intervalMs, size, limitMs} | {..., mode: 'flood', count, chunk, size, limitMs}
 *                                        → { sentAt: Float64Array, sent, firstSend, lastSend, stats }
 *                                        (stops sending at limitMs: `sent` may be less than `count`)
 *   conv-write {phase, keys, intervalMs, durationMs, size}
 *                                        → { writes: ConvWrite[] } (the partition phase)
 *   conv-digest                          → { digest, entries, at }
 *   conv-contents                        → { entries: [key, tag][] }
 *   partition {deny} / heal              the peer's own fault layer, if it has one
 */
import { createHash } from 'node:crypto'
import { machineNow } from '../../testkit/cluster-node-protocol.js'

export type ItemKind = 'cache' | 'inv' | 'event'

/** What a value of the partition phase says about its write. */
export interface ConvTag { readonly w: string, readonly n: number }
/** A write of the partition phase with its last-writer-wins stamp (ms, counter, node), as the peer's store orders it. */
export interface ConvWrite { readonly key: string, readonly tag: ConvTag, readonly stamp: readonly [number, number, string] }

export interface PeerImpl {
  status: () => Promise<{ ready: boolean, [k: string]: unknown }>
  /** Called by `expect`: e.g. an invalidation cache loads the keys it will be told to drop. */
  prepare: (phase: string, kind: ItemKind, capacity: number) => Promise<void>
  /** Writes item `index` of the phase (set, invalidate, publish); resolves when the caller may go on. */
  write: (kind: ItemKind, key: string, index: number, pad: string) => Promise<void> | void
  /** Resolves once everything written has left this process (a client's buffered commands). */
  flush: () => Promise<void>
  /** A partition-phase write; answers its stamp. */
  convWrite: (key: string, tag: ConvTag, pad: string) => Promise<ConvWrite['stamp']>
  /** The partition phase's store: [key, tag] for every entry. */
  convEntries: () => Array<[string, ConvTag]>
  stats: () => unknown
  partition?: (deny: string[]) => Promise<void>
  heal?: () => Promise<void>
}

interface Request { id: number, type: string, [k: string]: unknown }

/** Order-independent fingerprint of a partition-phase store: what the bench compares across nodes and with the expected state. */
export function convDigest (entries: ReadonlyArray<readonly [string, ConvTag]>): string {
  const lines = entries.map(([k, t]) => `${k}=${t.w}.${t.n}`).sort()
  return createHash('sha1').update(lines.join('\n')).digest('hex')
}

/** Records, per item of the current phase, when it arrived here. */
export class Arrivals {
  phase = ''
  kind: ItemKind = 'cache'
  private at = new Float64Array(0)
  delivered = 0
  lastArrival = 0

  expect (phase: string, kind: ItemKind, capacity: number): void {
    this.phase = phase
    this.kind = kind
    this.at = new Float64Array(capacity).fill(NaN)
    this.delivered = 0
    this.lastArrival = 0
  }

  /** An item of `kind` with key `<phase>:<index>` reached this node. */
  arrived (kind: ItemKind, key: string): void {
    if (kind !== this.kind) return
    const colon = key.lastIndexOf(':')
    if (key.slice(0, colon) !== this.phase) return
    const i = Number(key.slice(colon + 1))
    if (!(i < this.at.length) || !Number.isNaN(this.at[i])) return
    const now = machineNow()
    this.at[i] = now
    this.delivered++
    this.lastArrival = now
  }

  report (count: number): object {
    return { delivered: this.delivered, lastArrival: this.lastArrival, arrivals: this.at.slice(0, count) }
  }
}

/** Writes items 0..count-1, paced or as fast as `write` takes them, and stops early at `limitMs`; answers when each was sent and how many were. */
async function drive (count: number, mode: 'paced' | 'flood', intervalMs: number, chunk: number, limitMs: number, write: (i: number) => Promise<void> | void): Promise<{ sentAt: Float64Array, sent: number }> {
  const sentAt = new Float64Array(count).fill(NaN)
  const start = performance.now()
  const end = start + limitMs
  let i = 0
  if (mode === 'paced') {
    while (i < count && performance.now() < end) {
      // Catches up after a late timer: the rate holds on average, in bursts if it must.
      while (i < count && performance.now() >= start + i * intervalMs) {
        sentAt[i] = machineNow()
        await write(i++)
      }
      if (i < count) await new Promise(resolve => setTimeout(resolve, Math.max(0, start + i * intervalMs - performance.now())))
    }
  } else {
    while (i < count && performance.now() < end) {
      for (let k = 0; k < chunk && i < count; k++) {
        sentAt[i] = machineNow()
        await write(i++)
      }
      await new Promise(resolve => setImmediate(resolve))
    }
  }
  return { sentAt: sentAt.slice(0, i), sent: i }
}

/** Answers the bench's requests for `impl` until the IPC channel closes. */
export function servePeer (nodeId: string, impl: PeerImpl, arrivals: Arrivals): void {
  // The bench may be gone by the time an answer is ready: the answer is dropped, and the disconnect stops this process.
  const send = (m: object): void => { if (process.connected) process.send?.(m, undefined, {}, () => {}) }
  const handle = async (req: Request): Promise<object> => {
    switch (req.type) {
      case 'status':
        return await impl.status()
      case 'expect':
        await impl.prepare(req.phase as string, req.kind as ItemKind, req.capacity as number)
        arrivals.expect(req.phase as string, req.kind as ItemKind, req.capacity as number)
        return {}
      case 'progress':
        return { delivered: arrivals.delivered }
      case 'report':
        return { ...arrivals.report(req.count as number), stats: impl.stats() }
      case 'send': {
        const pad = 'x'.repeat(req.size as number)
        const kind = req.kind as ItemKind
        const phase = req.phase as string
        const firstSend = machineNow()
        const { sentAt, sent } = await drive(req.count as number, req.mode as 'paced' | 'flood', (req.intervalMs as number | undefined) ?? 1, (req.chunk as number | undefined) ?? 500, req.limitMs as number, i => impl.write(kind, `${phase}:${i}`, i, pad))
        await impl.flush()
        return { sentAt, sent, firstSend, lastSend: machineNow(), stats: impl.stats() }
      }
      case 'conv-write': {
        const pad = 'x'.repeat(req.size as number)
        const writes: ConvWrite[] = []
        const keys = req.keys as number
        const until = performance.now() + (req.durationMs as number)
        const max = Math.ceil((req.durationMs as number) / (req.intervalMs as number))
        let n = 0
        // Bounded by time and by count.
        await drive(max, 'paced', req.intervalMs as number, 1, req.durationMs as number, async () => {
          if (performance.now() >= until) return
          const key = `${req.phase as string}:k${Math.floor(Math.random() * keys)}`
          const tag = { w: nodeId, n: ++n }
          writes.push({ key, tag, stamp: await impl.convWrite(key, tag, pad) })
        })
        // Not flushed: a client cut off from its server would hold the answer until the heal.
        return { writes }
      }
      case 'conv-digest': {
        const entries = impl.convEntries()
        return { digest: convDigest(entries), entries: entries.length, at: machineNow() }
      }
      case 'conv-contents':
        return { entries: impl.convEntries() }
      case 'partition':
        if (impl.partition === undefined) throw new Error('this peer has no fault layer')
        await impl.partition(req.deny as string[])
        return {}
      case 'heal':
        if (impl.heal === undefined) throw new Error('this peer has no fault layer')
        await impl.heal()
        return {}
      default:
        throw new Error(`unknown request ${req.type}`)
    }
  }
  process.on('message', (req: Request) => {
    handle(req).then(r => { send({ id: req.id, ...r }) }, err => { send({ id: req.id, error: String(err) }) })
  })
}
