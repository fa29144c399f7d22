/**
 * The application state machine each simulated node runs: the key-value
 * machine behind the driver's StateMachine interface. It also checks what
 * only the state machine can see: within one incarnation, entries arrive in
 * increasing index order and each at most once, and a snapshot never takes
 * the state back.
 */
import type { StateMachine } from '../raft/state-machine.js'
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

export class SimStateMachine implements StateMachine<KvResult | null> {
  kv = new KvMachine()
  /** Index of the last entry applied or restored. */
  applied = 0

  constructor (private readonly watcher: StateMachineWatcher) {}

  apply (e: Entry): KvResult | null {
    if (e.index <= this.applied) this.watcher.fail(`applied entry ${e.index} after ${this.applied}: entries applied twice or out of order`)
    this.applied = e.index
    const env = decodeKv(e.data)
    const result = env === null ? null : this.kv.apply(env.cmd)
    this.watcher.applied(e, decoder.decode(this.kv.snapshot()))
    return result
  }

  snapshot (): Uint8Array {
    const kv = decoder.decode(this.kv.snapshot())
    return encoder.encode(JSON.stringify({ applied: this.applied, kv }))
  }

  restore (data: Uint8Array): void {
    const { applied, kv } = JSON.parse(decoder.decode(data)) as { applied: number, kv: string }
    if (applied < this.applied) this.watcher.fail(`restored a snapshot at ${applied} over state applied to ${this.applied}`)
    this.applied = applied
    this.kv = new KvMachine()
    this.kv.restore(encoder.encode(kv))
    this.watcher.restored()
  }
}
