/**
 * The replicated key-value store of the kv-node example: a Raft state
 * machine whose values remember the log index that last wrote them.
 */
import { Packr } from 'msgpackr'
import { z } from 'zod'
import type { StateMachine } from '../../raft/index.js'
import type { Entry } from '../../raft/types.js'
import { decodeCommand, MAX_KEY, MAX_VALUE } from './kv-command.js'

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

// Snapshots are restored rarely, and whole: a schema is cheap enough there.
const key = z.string().min(1).max(MAX_KEY)
const value = z.string().max(MAX_VALUE)

export interface KvValue {
  readonly value: string
  /** Log index of the write that set it. */
  readonly index: number
}

export type KvApplyResult =
  | { readonly ok: true, readonly index: number }
  | { readonly ok: false, readonly index: number, readonly value: string | null }

export class KvState implements StateMachine<KvApplyResult | null> {
  private data = new Map<string, KvValue>()

  get (k: string): KvValue | undefined {
    return this.data.get(k)
  }

  get size (): number {
    return this.data.size
  }

  /** Applies one committed command; a malformed entry is a no-op on every node alike. */
  apply (e: Entry): KvApplyResult | null {
    const cmd = decodeCommand(e.data)
    if (cmd === null) return null
    const current = this.data.get(cmd.key)
    switch (cmd.op) {
      case 'put':
        this.data.set(cmd.key, { value: cmd.value, index: e.index })
        return { ok: true, index: e.index }
      case 'delete':
        this.data.delete(cmd.key)
        return { ok: true, index: e.index }
      case 'cas':
        if ((current?.value ?? null) !== cmd.expect) return { ok: false, index: e.index, value: current?.value ?? null }
        this.data.set(cmd.key, { value: cmd.value, index: e.index })
        return { ok: true, index: e.index }
    }
  }

  snapshot (): Uint8Array {
    return packr.pack([...this.data.entries()].map(([k, v]) => [k, v.value, v.index]))
  }

  restore (data: Uint8Array): void {
    const rows = z.array(z.tuple([key, value, z.number().int().nonnegative()])).parse(packr.unpack(data))
    this.data = new Map(rows.map(([k, v, index]) => [k, { value: v, index }]))
  }
}
