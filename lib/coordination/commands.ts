/**
 * The commands of the coordination log and their wire form.
 *
 * An entry's data is an 8-byte leader stamp (big-endian float64, wall-clock
 * milliseconds, never decreasing) followed by a msgpack envelope. Only the
 * leader stamps: followers forward the bare envelope, so every node applies
 * the same time and none reads its own clock while applying.
 *
 * The envelope names the client (the proposing session) and a sequence
 * number so that a command re-sent across a leader change is applied once
 * (Raft thesis §6.3); `lo` is the client's lowest sequence still waiting,
 * so the state machine can forget the answers below it.
 */
import { Packr } from 'msgpackr'
import { z } from 'zod'
import { MAX_FILE_BYTES, MAX_PATH_LENGTH } from './file-table.js'

/** Locks and elections share one table; an election is a lock whose holder is observed. */
export type LockKind = 'lock' | 'election'

export type Command =
  /** Opens the client's session; ends any older session of the same node (it restarted). */
  | { readonly op: 'open', readonly node: string, readonly ttlMs: number }
  /** Ends the client's session, releasing everything it holds. */
  | { readonly op: 'close' }
  /** Leader only: the session's keep-alives stopped for longer than its TTL. */
  | { readonly op: 'expire', readonly session: string }
  /** Takes the lock now, or (wait) queues for it; otherwise answers not granted. */
  | { readonly op: 'acquire', readonly kind: LockKind, readonly name: string, readonly owner: string, readonly wait: boolean }
  /** Releases the lock if `owner` holds it, or leaves its queue. Idempotent. */
  | { readonly op: 'release', readonly kind: LockKind, readonly name: string, readonly owner: string }
  /** An application event in the log's total order (`events.publish(..., { ordered: true })`); no state is kept. */
  | { readonly op: 'publish', readonly topic: string, readonly payload: Uint8Array }
  | QueueCommand
  | ScheduleCommand
  /** Replaces (or creates) a file of the replicated file store. */
  | { readonly op: 'file-put', readonly path: string, readonly data: Uint8Array }
  | { readonly op: 'file-delete', readonly path: string }
  /** Several commands of one session applied in order in one entry, each with its own answer. */
  | { readonly op: 'batch', readonly cmds: readonly SingleCommand[] }

/** Queue commands (see QueueTable). `q-expire` and `q-wake` are the leader's own. */
export type QueueCommand =
  | { readonly op: 'enqueue', readonly queue: string, readonly id: string | null, readonly payload: Uint8Array, readonly delayMs: number, readonly maxAttempts: number }
  | { readonly op: 'claim', readonly queue: string, readonly owner: string, readonly visibilityMs: number, readonly max: number, readonly wait: boolean, readonly maxAttempts: number | null }
  | { readonly op: 'unwait', readonly queue: string, readonly owner: string }
  | { readonly op: 'ack', readonly queue: string, readonly id: string, readonly fence: number }
  | { readonly op: 'nack', readonly queue: string, readonly id: string, readonly fence: number, readonly delayMs: number, readonly error: string | null }
  | { readonly op: 'give-back', readonly queue: string, readonly id: string, readonly fence: number }
  | { readonly op: 'extend', readonly queue: string, readonly id: string, readonly fence: number, readonly visibilityMs: number }
  | { readonly op: 'requeue-dead', readonly queue: string, readonly ids: string[] | null }
  | { readonly op: 'purge-dead', readonly queue: string, readonly ids: string[] | null }
  | { readonly op: 'q-expire', readonly queue: string, readonly id: string, readonly fence: number }
  | { readonly op: 'q-wake', readonly queue: string }

/** Scheduler commands (see ScheduleTable). `tick` is the leader's own. */
export type ScheduleCommand =
  | { readonly op: 'task-register', readonly task: string, readonly spec: string }
  | { readonly op: 'task-unregister', readonly task: string }
  | { readonly op: 'task-done', readonly task: string, readonly fence: number, readonly outcome: 'ok' | 'error', readonly error: string | null }
  | { readonly op: 'tick', readonly task: string, readonly scheduledAt: number, readonly run: boolean, readonly missed: number }

export type SingleCommand = Exclude<Command, { op: 'batch' }>

/** Commands only the leader proposes, for itself (client ''). */
export const LEADER_OPS: ReadonlySet<Command['op']> = new Set(['expire', 'q-expire', 'q-wake', 'tick'])

export interface Envelope {
  /** The proposing session; '' for the leader's own commands (expire). */
  readonly c: string
  readonly s: number
  readonly lo: number
  readonly cmd: Command
}

export type CommandResult =
  | { readonly ok: true, readonly granted?: boolean, readonly queued?: boolean, readonly fence?: number, readonly value?: unknown }
  | { readonly ok: false, readonly error: 'no-session' | 'invalid' | 'claim-expired' | 'not-found' | 'full', readonly message: string }

export const MAX_NAME_LENGTH = 256
export const MAX_ID_LENGTH = 128
/** A forwarded command larger than this is refused before it reaches the log (below the mesh RPC's 1 MiB body). */
export const MAX_COMMAND_BYTES = 768 * 1024
/** A queue item's encoded payload. */
export const MAX_QUEUE_PAYLOAD_BYTES = 256 * 1024
export const MAX_BATCH_COMMANDS = 1024
const DAY_MS = 24 * 3600_000
const STAMP_BYTES = 8

const name = z.string().min(1).max(MAX_NAME_LENGTH)
const id = z.string().min(1).max(MAX_ID_LENGTH)
const kind = z.enum(['lock', 'election'])
const singleSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('open'), node: id, ttlMs: z.number().int().positive().max(24 * 3600_000) }),
  z.object({ op: z.literal('close') }),
  z.object({ op: z.literal('expire'), session: id }),
  z.object({ op: z.literal('acquire'), kind, name, owner: id, wait: z.boolean() }),
  z.object({ op: z.literal('release'), kind, name, owner: id }),
  z.object({ op: z.literal('publish'), topic: name, payload: z.instanceof(Uint8Array) }),
  ...queueSchemas(),
  ...scheduleSchemas(),
  z.object({ op: z.literal('file-put'), path: z.string().min(1).max(MAX_PATH_LENGTH), data: z.instanceof(Uint8Array).refine(d => d.byteLength <= MAX_FILE_BYTES, `file over ${MAX_FILE_BYTES} bytes`) }),
  z.object({ op: z.literal('file-delete'), path: z.string().min(1).max(MAX_PATH_LENGTH) })
])
const batchSchema = z.object({ op: z.literal('batch'), cmds: z.array(singleSchema).min(1).max(MAX_BATCH_COMMANDS) })
const commandSchema = z.union([singleSchema, batchSchema])

function scheduleSchemas () {
  const task = name
  return [
    z.object({ op: z.literal('task-register'), task, spec: z.string().min(2).max(1024) }),
    z.object({ op: z.literal('task-unregister'), task }),
    z.object({ op: z.literal('task-done'), task, fence: z.number().int().positive(), outcome: z.enum(['ok', 'error']), error: z.string().max(1024).nullable() }),
    z.object({ op: z.literal('tick'), task, scheduledAt: z.number().finite(), run: z.boolean(), missed: z.number().int().nonnegative() })
  ] as const
}

function queueSchemas () {
  const queue = name
  const fence = z.number().int().positive()
  const delay = z.number().int().min(0).max(366 * DAY_MS)
  const visibility = z.number().int().min(100).max(DAY_MS)
  const attempts = z.number().int().min(1).max(1000)
  const ids = z.array(id).max(MAX_BATCH_COMMANDS).nullable()
  return [
    z.object({ op: z.literal('enqueue'), queue, id: id.nullable(), payload: z.instanceof(Uint8Array).refine(p => p.byteLength <= MAX_QUEUE_PAYLOAD_BYTES, `payload over ${MAX_QUEUE_PAYLOAD_BYTES} bytes`), delayMs: delay, maxAttempts: attempts }),
    z.object({ op: z.literal('claim'), queue, owner: id, visibilityMs: visibility, max: z.number().int().min(1).max(MAX_BATCH_COMMANDS), wait: z.boolean(), maxAttempts: attempts.nullable() }),
    z.object({ op: z.literal('unwait'), queue, owner: id }),
    z.object({ op: z.literal('ack'), queue, id, fence }),
    z.object({ op: z.literal('nack'), queue, id, fence, delayMs: delay, error: z.string().max(1024).nullable() }),
    z.object({ op: z.literal('give-back'), queue, id, fence }),
    z.object({ op: z.literal('extend'), queue, id, fence, visibilityMs: visibility }),
    z.object({ op: z.literal('requeue-dead'), queue, ids }),
    z.object({ op: z.literal('purge-dead'), queue, ids }),
    z.object({ op: z.literal('q-expire'), queue, id, fence }),
    z.object({ op: z.literal('q-wake'), queue })
  ] as const
}
const envelopeSchema = z.object({
  c: z.string().max(MAX_ID_LENGTH),
  s: z.number().int().nonnegative(),
  lo: z.number().int().nonnegative(),
  cmd: commandSchema
})

const packr = new Packr({ useRecords: false, moreTypes: false })

/** Thrown for bytes that are not a valid envelope; the message says why. */
export class InvalidCommandError extends Error {
  override readonly name = 'InvalidCommandError'
  readonly code = 'ERR_INVALID_COMMAND'
}

export function encodeEnvelope (env: Envelope): Uint8Array {
  return packr.pack(env)
}

/** Decodes and validates an envelope from the network or the log. */
export function decodeEnvelope (bytes: Uint8Array): Envelope {
  if (bytes.byteLength > MAX_COMMAND_BYTES) throw new InvalidCommandError(`command of ${bytes.byteLength} bytes exceeds ${MAX_COMMAND_BYTES}`)
  let raw: unknown
  try {
    raw = packr.unpack(bytes)
  } catch (err) {
    throw new InvalidCommandError(`undecodable command: ${(err as Error).message}`)
  }
  const parsed = envelopeSchema.safeParse(raw)
  if (!parsed.success) throw new InvalidCommandError(`invalid command: ${parsed.error.issues.map(i => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
  return parsed.data
}

/** The entry data the leader proposes: its stamp, then the envelope bytes as received. */
export function stampEntry (stamp: number, envelope: Uint8Array): Uint8Array {
  const out = new Uint8Array(STAMP_BYTES + envelope.byteLength)
  new DataView(out.buffer).setFloat64(0, stamp)
  out.set(envelope, STAMP_BYTES)
  return out
}

/**
 * Entries the leader built from envelopes it had just decoded and checked:
 * its own apply reads them from here rather than decoding every entry twice
 * (msgpack and the schema were 7% of a queue workload's CPU). Keyed by the
 * entry's bytes, which the log keeps unchanged; followers decode as before.
 */
const checkedEntries = new WeakMap<Uint8Array, { stamp: number, envelope: Envelope }>()

/** The leader's entry for an envelope: stamped, then decoded and validated (throws InvalidCommandError) once for proposing and applying. */
export function leaderEntry (stamp: number, envelope: Uint8Array): { data: Uint8Array, envelope: Envelope } {
  const data = stampEntry(stamp, envelope)
  const split = decodeEntry(data)
  checkedEntries.set(data, split)
  return { data, envelope: split.envelope }
}

/** An entry's stamp and envelope: the leader's own from checkedEntries (once: the log keeps the entry until the next snapshot), any other decoded and validated. */
export function splitEntry (data: Uint8Array): { stamp: number, envelope: Envelope } {
  const checked = checkedEntries.get(data)
  if (checked === undefined) return decodeEntry(data)
  checkedEntries.delete(data)
  return checked
}

function decodeEntry (data: Uint8Array): { stamp: number, envelope: Envelope } {
  if (data.byteLength < STAMP_BYTES) throw new InvalidCommandError(`entry of ${data.byteLength} bytes has no stamp`)
  const stamp = new DataView(data.buffer, data.byteOffset, STAMP_BYTES).getFloat64(0)
  if (!Number.isFinite(stamp)) throw new InvalidCommandError('entry stamp is not a finite time')
  return { stamp, envelope: decodeEnvelope(data.subarray(STAMP_BYTES)) }
}
