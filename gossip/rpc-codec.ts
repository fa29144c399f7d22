/**
 * Wire codec of the mesh RPC (`/raftmesh/rpc/1.0.0`): each frame is one
 * msgpack array, checked element by element before use.
 *
 *   request   [0, id, method, body]   caller → callee
 *   result    [1, id, body]           callee → caller
 *   failure   [2, id, kind, name, code, message]
 *   cancel    [3, id]                 caller → callee: the caller gave up
 *
 * `id` is chosen by the caller, unique among its pending calls on the
 * stream. Arrays rather than maps keep a round trip's frames to a few bytes
 * beyond the body.
 */
import { Packr } from 'msgpackr'
import { InvalidArgumentError, ProtocolFrameError } from './errors.js'
import { checkPlainMsgpack } from './plain-msgpack.js'

/** Longest method name, in characters. */
export const MAX_METHOD_CHARS = 128
/** Longest error name or code carried back to the caller. */
export const MAX_ERROR_NAME_CHARS = 128
/** Longest error message carried back; longer ones are cut. */
export const MAX_ERROR_MESSAGE_CHARS = 4096
/** Bytes a frame may hold beyond its body (envelope, method name, error text). */
export const FRAME_OVERHEAD_BYTES = 64 * 1024

/** Why a call failed on the callee's side. */
export const FailureKind = {
  /** The handler threw. */
  Handler: 0,
  /** No handler for the method. */
  UnknownMethod: 1,
  /** Too many of this caller's calls were running; the handler did not run. */
  Busy: 2
} as const
export type FailureKind = typeof FailureKind[keyof typeof FailureKind]

export type RpcFrame =
  | { readonly t: 'request', readonly id: number, readonly method: string, readonly body: Uint8Array }
  | { readonly t: 'result', readonly id: number, readonly body: Uint8Array }
  | { readonly t: 'failure', readonly id: number, readonly kind: FailureKind, readonly name: string, readonly code: string, readonly message: string }
  | { readonly t: 'cancel', readonly id: number }

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

export function encodeRpcFrame (f: RpcFrame): Uint8Array {
  switch (f.t) {
    case 'request': return packr.pack([0, f.id, f.method, f.body])
    case 'result': return packr.pack([1, f.id, f.body])
    case 'failure': return packr.pack([2, f.id, f.kind, cut(f.name, MAX_ERROR_NAME_CHARS), cut(f.code, MAX_ERROR_NAME_CHARS), cut(f.message, MAX_ERROR_MESSAGE_CHARS)])
    case 'cancel': return packr.pack([3, f.id])
    default: return assertNever(f)
  }
}

/**
 * Decodes and validates one frame. Bodies are copied out of the frame, so
 * whoever receives one owns it. Throws ProtocolFrameError for anything that
 * is not exactly one of the frames above within the limits.
 */
export function decodeRpcFrame (frame: Uint8Array, maxBodyBytes: number): RpcFrame {
  let v: unknown
  try {
    checkPlainMsgpack(frame)
    v = packr.unpack(frame)
  } catch (err) {
    throw new ProtocolFrameError(`not msgpack: ${(err as Error).message.slice(0, 100)}`)
  }
  if (!Array.isArray(v) || v.length < 2) throw new ProtocolFrameError('not an rpc frame')
  const [tag, id] = v as unknown[]
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) throw new ProtocolFrameError('bad call id')
  switch (tag) {
    case 0: {
      expectLength(v, 4)
      return { t: 'request', id, method: methodName(v[2]), body: body(v[3], maxBodyBytes) }
    }
    case 1:
      expectLength(v, 3)
      return { t: 'result', id, body: body(v[2], maxBodyBytes) }
    case 2: {
      expectLength(v, 6)
      const kind = v[2]
      if (kind !== FailureKind.Handler && kind !== FailureKind.UnknownMethod && kind !== FailureKind.Busy) throw new ProtocolFrameError('bad failure kind')
      return { t: 'failure', id, kind, name: text(v[3], MAX_ERROR_NAME_CHARS), code: text(v[4], MAX_ERROR_NAME_CHARS), message: text(v[5], MAX_ERROR_MESSAGE_CHARS) }
    }
    case 3:
      expectLength(v, 2)
      return { t: 'cancel', id }
    default:
      throw new ProtocolFrameError('unknown rpc frame type')
  }
}

/** Checks a method name given by local code; a bad one is the caller's bug. */
export function checkMethodName (method: unknown): string {
  if (!isMethodName(method)) throw new InvalidArgumentError(`method must be a string of 1..${MAX_METHOD_CHARS} characters`)
  return method
}

function isMethodName (v: unknown): v is string {
  return typeof v === 'string' && v.length >= 1 && v.length <= MAX_METHOD_CHARS
}

function methodName (v: unknown): string {
  if (!isMethodName(v)) throw new ProtocolFrameError('bad method name')
  return v
}

function body (v: unknown, maxBodyBytes: number): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new ProtocolFrameError('body is not bytes')
  if (v.byteLength > maxBodyBytes) throw new ProtocolFrameError(`body of ${v.byteLength} bytes (limit ${maxBodyBytes})`)
  return new Uint8Array(v)
}

function text (v: unknown, max: number): string {
  if (typeof v !== 'string' || v.length > max) throw new ProtocolFrameError('bad error text')
  return v
}

function expectLength (v: unknown[], n: number): void {
  if (v.length !== n) throw new ProtocolFrameError(`frame of ${v.length} elements, expected ${n}`)
}

function cut (s: string, max: number): string {
  return s.length > max ? s.slice(0, max) : s
}

function assertNever (x: never): never {
  throw new Error(`unexpected rpc frame ${JSON.stringify(x)}`)
}
