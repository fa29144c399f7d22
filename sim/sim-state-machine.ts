/**
 * The application state machine each simulated node runs: the key-value
 * machine behind the driver's StateMachine interface. It also checks what
 * only the state machine can see: within one incarnation, entries arrive in
 * increasing index order and each at most once, and a snapshot never takes
 * the state back.
 */
import { crc32 } from 'node:zlib'
import { CoordinationState } from '../lib/coordination/state.js'
import type { StateMachine } from '../raft/driver/state-machine.js'
import type { Entry } from '../raft/types.js'
import { decodeKv, KvMachine, type KvResult } from './kv-machine.js'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Told what the state machine sees. */
export interface StateMachineWatcher {
  fail(msg: string): void
  /** `state` is the whole key-value state after `e`: every node must reach the same one. */
  applied(e: Entry, state: string): void
  restored(): void
}

/**
 * The key-value machine and, for entries that are not key-value commands,
 * the coordination state machine the library ships (sessions, locks,
 * queues, tasks, files). The state every node must agree on after each
 * entry covers both (the coordination part as a checksum of its snapshot).
 * Within one node, a lock's fences only grow, and a queue item is claimed
 * with the index of the entry that claims it.
 */
export class SimStateMachine implements StateMachine<KvResult | null> {
  kv = new KvMachine()
  coordination = new CoordinationState()
  /** Index of the last entry applied or restored. */
  applied = 0
  private readonly fences = new Map<string, number>()
  private current = 0

  constructor (private readonly watcher: StateMachineWatcher) {
    this.watch()
  }

  apply (e: Entry): KvResult | null {
    if (e.index <= this.applied) this.watcher.fail(`applied entry ${e.index} after ${this.applied}: entries applied twice or out of order`)
    this.applied = e.index
    this.current = e.index
    const env = decodeKv(e.data)
    const result = env === null ? null : this.kv.apply(env.cmd)
    if (env === null && e.data.byteLength > 0) {
      try {
        this.coordination.apply(e)
      } catch (err) {
        this.watcher.fail(`the coordination state machine threw on entry ${e.index}: ${(err as Error).stack ?? String(err)}`)
      }
    }
    this.watcher.applied(e, `${decoder.decode(this.kv.snapshot())} coordination=${crc32(this.coordination.snapshot())}`)
    return result
  }

  snapshot (): Uint8Array {
    const kv = decoder.decode(this.kv.snapshot())
    return encoder.encode(JSON.stringify({ applied: this.applied, kv, coordination: Buffer.from(this.coordination.snapshot()).toString('base64') }))
  }

  restore (data: Uint8Array): void {
    const { applied, kv, coordination } = JSON.parse(decoder.decode(data)) as { applied: number, kv: string, coordination: string }
    if (applied < this.applied) this.watcher.fail(`restored a snapshot at ${applied} over state applied to ${this.applied}`)
    this.applied = applied
    this.kv = new KvMachine()
    this.kv.restore(encoder.encode(kv))
    this.coordination.restore(Buffer.from(coordination, 'base64'))
    this.watcher.restored()
  }

  private watch (): void {
    const c = this.coordination
    c.on('granted', g => {
      const key = `${g.kind}/${g.name}`
      const last = this.fences.get(key) ?? 0
      if (g.fence <= last) this.watcher.fail(`${key} granted with fence ${g.fence} after fence ${last}`)
      this.fences.set(key, g.fence)
    })
    c.on('restored', () => {
      for (const l of c.lockList()) if (l.holder !== null) this.fences.set(`${l.kind}/${l.name}`, Math.max(this.fences.get(`${l.kind}/${l.name}`) ?? 0, l.holder.fence))
    })
    c.queues.on('claimed', e => {
      for (const it of e.items) if (it.fence !== this.current) this.watcher.fail(`item ${it.id} claimed at entry ${this.current} with fence ${it.fence}`)
    })
  }
}
