/**
 * A deterministic key-value state machine for the simulator and tests:
 * commands are JSON, results are what a client would be told.
 */
const encoder = new TextEncoder()
const decoder = new TextDecoder()

export type KvCommand =
  | { readonly op: 'put', readonly key: string, readonly value: string }
  | { readonly op: 'delete', readonly key: string }
  | { readonly op: 'cas', readonly key: string, readonly expect: string | null, readonly value: string }

/** A command tagged with who sent it, so the sender can recognise its entry. */
export interface KvEnvelope {
  readonly client: number
  readonly opId: number
  readonly cmd: KvCommand
}

export interface KvResult {
  readonly ok: boolean
  /** Current value for a failed cas; previous value otherwise. */
  readonly value: string | null
}

export function encodeKv (env: KvEnvelope): Uint8Array {
  return encoder.encode(JSON.stringify(env))
}

/** Decodes a command; returns null for anything that is not one (it is then a no-op). */
export function decodeKv (data: Uint8Array): KvEnvelope | null {
  try {
    const v = JSON.parse(decoder.decode(data)) as KvEnvelope
    if (typeof v?.client !== 'number' || typeof v.opId !== 'number' || typeof v.cmd?.key !== 'string') return null
    return v
  } catch {
    return null
  }
}

export class KvMachine {
  private data = new Map<string, string>()

  get (key: string): string | null {
    return this.data.get(key) ?? null
  }

  size (): number {
    return this.data.size
  }

  apply (cmd: KvCommand): KvResult {
    const prev = this.data.get(cmd.key) ?? null
    switch (cmd.op) {
      case 'put':
        this.data.set(cmd.key, cmd.value)
        return { ok: true, value: prev }
      case 'delete':
        this.data.delete(cmd.key)
        return { ok: true, value: prev }
      case 'cas':
        if (prev !== cmd.expect) return { ok: false, value: prev }
        this.data.set(cmd.key, cmd.value)
        return { ok: true, value: prev }
    }
  }

  snapshot (): Uint8Array {
    return encoder.encode(JSON.stringify([...this.data.entries()].sort()))
  }

  restore (bytes: Uint8Array): void {
    this.data = new Map(bytes.byteLength === 0 ? [] : JSON.parse(decoder.decode(bytes)) as Array<[string, string]>)
  }
}
