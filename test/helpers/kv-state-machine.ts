/**
 * The simulator's key-value machine behind the driver's StateMachine
 * interface, for driver tests and benchmarks.
 */
import { decodeKv, KvMachine, type KvResult } from '../../sim/kv-machine.js'
import type { StateMachine } from '../../raft/driver/state-machine.js'
import type { Entry } from '../../raft/types.js'

export class KvStateMachine implements StateMachine<KvResult | null> {
  readonly kv = new KvMachine()
  applied = 0

  apply (e: Entry): KvResult | null {
    this.applied = e.index
    const env = decodeKv(e.data)
    return env === null ? null : this.kv.apply(env.cmd)
  }

  snapshot (): Uint8Array {
    return this.kv.snapshot()
  }

  restore (data: Uint8Array): void {
    this.kv.restore(data)
  }
}
