/**
 * The kv-node's log entry: a command as msgpack, checked field by field on
 * both ends. The check is written out rather than a zod schema because it
 * runs twice per write on the leader (propose, apply) and once per follower:
 * the schema's parse was ~2% of the leader's event loop under 64 PUTs in
 * flight (`npm run bench -- cpu`, issue 15).
 */
import { Packr } from 'msgpackr'

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

/** Longest key and value accepted, in UTF-16 code units. */
export const MAX_KEY = 1024
export const MAX_VALUE = 1024 * 1024

export type KvCommand =
  | { op: 'put', key: string, value: string }
  | { op: 'delete', key: string }
  | { op: 'cas', key: string, expect: string | null, value: string }

const isKey = (v: unknown): v is string => typeof v === 'string' && v.length >= 1 && v.length <= MAX_KEY
const isValue = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_VALUE

/** Own enumerable keys, exactly these: a command with an extra field is not a command. */
function hasExactly (o: object, keys: readonly string[]): boolean {
  let n = 0
  for (const k in o) {
    if (!Object.hasOwn(o, k)) continue
    if (!keys.includes(k)) return false
    n++
  }
  return n === keys.length
}

export function isKvCommand (v: unknown): v is KvCommand {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const c = v as Record<string, unknown>
  switch (c.op) {
    case 'put': return hasExactly(c, ['op', 'key', 'value']) && isKey(c.key) && isValue(c.value)
    case 'delete': return hasExactly(c, ['op', 'key']) && isKey(c.key)
    case 'cas': return hasExactly(c, ['op', 'key', 'expect', 'value']) && isKey(c.key) && (c.expect === null || isValue(c.expect)) && isValue(c.value)
    default: return false
  }
}

export function encodeCommand (c: KvCommand): Uint8Array {
  if (!isKvCommand(c)) throw new TypeError('not a kv command')
  return packr.pack(c)
}

/** The command in an entry, or null for bytes that are not one (a no-op on every node alike). */
export function decodeCommand (data: Uint8Array): KvCommand | null {
  let v: unknown
  try {
    v = packr.unpack(data)
  } catch {
    return null
  }
  return isKvCommand(v) ? v : null
}
