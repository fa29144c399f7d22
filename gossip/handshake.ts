/**
 * The join handshake (`/raftmesh/handshake/1.0.0`), run once on every new
 * connection before the peer counts as a member:
 *
 *   dialer   -> hello    {cluster, protocol, app, node, addrs}
 *   listener -> hello, verdict
 *   dialer   -> verdict
 *
 * Both sides compare the two hellos with the same rules, so a version or
 * cluster mismatch is reported on both sides with both values named. The
 * verdicts carry refusals only one side can see (a node id already in use).
 * After two positive verdicts the stream stays open as the connection's
 * control stream; its later frames are keep-alives, the peer exchange, and
 * `bye`, sent on a clean stop, which is how a leave is told apart from a
 * crash. The peer answers `bye` with `bye-seen` once it has recorded the
 * leave, and only then does the leaving node close its connections.
 */
import { Packr } from 'msgpackr'
import { z } from 'zod'
import { ClusterMismatchError, HandshakeError, NodeIdConflictError, VersionMismatchError } from './errors.js'
import { FrameStream, StreamClosedError } from './frame-stream.js'
import { checkPlainMsgpack } from './plain-msgpack.js'
import type { Stream } from '@libp2p/interface'

export const HANDSHAKE_PROTOCOL = '/raftmesh/handshake/1.0.0'
/**
 * Version of everything raftmesh sends between nodes, the meaning of its
 * log entries included; peers must agree exactly. 4: a queue claim by an
 * owner that already waits adds to its wait. 5: a claim's waiting slots go
 * to the back of the line unless the owner's own wait is last.
 */
export const PROTOCOL_VERSION = 5
/** Largest handshake or control frame accepted. */
export const MAX_HANDSHAKE_FRAME_BYTES = 256 * 1024
const MAX_ADDRS = 16
/** Limits of a node's application metadata. */
export const MAX_META_KEYS = 16
export const MAX_META_KEY = 64
export const MAX_META_VALUE = 1024
/** Most peers listed in one `peers` frame. */
export const MAX_EXCHANGED_PEERS = 256

/** What a node says about itself when it joins. */
export interface Hello {
  readonly cluster: string
  readonly protocol: number
  readonly app: string
  readonly node: string
  /** Addresses the node listens on, so peers can redial it after a failure. */
  readonly addrs: readonly string[]
  /** Application metadata (e.g. the node's HTTP address), shown on its Member. */
  readonly meta: Readonly<Record<string, string>>
}

export type Verdict = { readonly ok: true } | { readonly ok: false, readonly code: string, readonly message: string }

/** A member as told to another: enough to dial it. */
export interface PeerRecord {
  readonly id: string
  readonly addrs: readonly string[]
}

/**
 * Frames on an established control stream: `peers` (the sender's live
 * members, sent once after the handshake so a node that joined through one
 * bootstrap peer connects to all the others), `alive` (the keep-alive),
 * `bye` (a clean stop) and `bye-seen` (the answer to `bye`).
 */
export type ControlFrame = { readonly t: 'bye' } | { readonly t: 'bye-seen' } | { readonly t: 'alive' } | { readonly t: 'peers', readonly peers: readonly PeerRecord[] }

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

// Hello is the one frame every future protocol version must still parse, so
// that a version mismatch can be reported; it therefore tolerates unknown fields.
const helloSchema = z.object({
  t: z.literal('hello'),
  cluster: z.string().min(1).max(128),
  protocol: z.number().int().nonnegative().max(1_000_000),
  app: z.string().min(1).max(64),
  node: z.string().min(1).max(256),
  addrs: z.array(z.string().max(256)).max(MAX_ADDRS).optional(),
  meta: z.record(z.string().min(1).max(MAX_META_KEY), z.string().max(MAX_META_VALUE))
    .refine(m => Object.keys(m).length <= MAX_META_KEYS, `at most ${MAX_META_KEYS} metadata keys`).optional()
})
const verdictSchema = z.discriminatedUnion('ok', [
  z.strictObject({ t: z.literal('verdict'), ok: z.literal(true) }),
  z.strictObject({ t: z.literal('verdict'), ok: z.literal(false), code: z.string().max(64), message: z.string().max(1024) })
])
const controlSchema = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('bye') }),
  z.strictObject({ t: z.literal('bye-seen') }),
  z.strictObject({ t: z.literal('alive') }),
  z.strictObject({
    t: z.literal('peers'),
    peers: z.array(z.strictObject({ id: z.string().min(1).max(128), addrs: z.array(z.string().max(256)).max(MAX_ADDRS) })).max(MAX_EXCHANGED_PEERS)
  })
])

function decode<T> (schema: z.ZodType<T>, frame: Uint8Array, what: string, peerId: string): T {
  let raw: unknown
  try {
    checkPlainMsgpack(frame)
    raw = packr.unpack(frame)
  } catch (err) {
    throw new HandshakeError(`peer ${peerId} sent a ${what} frame that is not msgpack: ${(err as Error).message}`, peerId)
  }
  const parsed = schema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new HandshakeError(`peer ${peerId} sent an invalid ${what} frame at ${issue.path.join('.') || '(root)'}: ${issue.message}`, peerId)
  }
  return parsed.data
}

export function encodeHello (h: Hello): Uint8Array {
  return packr.pack({ t: 'hello', cluster: h.cluster, protocol: h.protocol, app: h.app, node: h.node, addrs: h.addrs.slice(0, MAX_ADDRS), meta: h.meta })
}

export function decodeHello (frame: Uint8Array, peerId: string): Hello {
  const h = decode(helloSchema, frame, 'hello', peerId)
  return { cluster: h.cluster, protocol: h.protocol, app: h.app, node: h.node, addrs: h.addrs ?? [], meta: h.meta ?? {} }
}

export function encodeVerdict (err: HandshakeError | null): Uint8Array {
  return packr.pack(err === null ? { t: 'verdict', ok: true } : { t: 'verdict', ok: false, code: err.code, message: err.message.slice(0, 1024) })
}

/** Decodes the other side's verdict on the handshake. */
export function decodeVerdict (frame: Uint8Array, peerId: string): Verdict {
  return decode(verdictSchema, frame, 'verdict', peerId)
}

export function encodeControl (f: ControlFrame): Uint8Array {
  return packr.pack(f)
}

/** Decodes a frame on an established control stream. */
export function decodeControl (frame: Uint8Array, peerId: string): ControlFrame {
  return decode(controlSchema, frame, 'control', peerId)
}

/**
 * The rules both sides apply to the other's hello. Cluster first: a peer of
 * another cluster has nothing else worth comparing.
 */
export function compareHello (local: Hello, remote: Hello, peerId: string): HandshakeError | null {
  if (remote.cluster !== local.cluster) return new ClusterMismatchError(remote.node, remote.cluster, local.cluster, peerId)
  if (remote.protocol !== local.protocol) return new VersionMismatchError('protocol', remote.node, String(remote.protocol), String(local.protocol), peerId)
  if (remote.app !== local.app) return new VersionMismatchError('app', remote.node, remote.app, local.app, peerId)
  if (remote.node === local.node) return new NodeIdConflictError(`peer ${peerId} claims node id ${remote.node}, which is this node's own id`, peerId, remote.node)
  return null
}

/** A check beyond the hello comparison (e.g. node id already taken); null accepts. */
export type AdmissionCheck = (remote: Hello, peerId: string) => HandshakeError | null

export interface HandshakeOptions {
  readonly local: Hello
  readonly peerId: string
  readonly admit: AdmissionCheck
  readonly timeoutMs: number
}

export interface HandshakeResult {
  readonly hello: Hello
  /** The stream, now the connection's control stream. */
  readonly control: FrameStream
}

function judge (opts: HandshakeOptions, remote: Hello): HandshakeError | null {
  return compareHello(opts.local, remote, opts.peerId) ?? opts.admit(remote, opts.peerId)
}

function refusedBy (remote: Hello, v: Verdict, peerId: string): HandshakeError {
  if (v.ok) throw new TypeError('not a refusal')
  const message = `peer ${remote.node} refused this node: ${v.message}`
  return v.code === 'ERR_NODE_ID_CONFLICT' ? new NodeIdConflictError(message, peerId, remote.node) : new HandshakeError(message, peerId, remote.node)
}

/** Runs `fn` under the handshake deadline, turning stream failures into HandshakeErrors. */
async function withDeadline<T> (opts: HandshakeOptions, fn: (signal: AbortSignal) => Promise<T>, peerNode: () => string | null): Promise<T> {
  const signal = AbortSignal.timeout(opts.timeoutMs)
  try {
    return await fn(signal)
  } catch (err) {
    if (err instanceof HandshakeError) throw err
    if (signal.aborted) throw new HandshakeError(`handshake with peer ${peerNode() ?? opts.peerId} timed out after ${opts.timeoutMs} ms`, opts.peerId, peerNode())
    const why = err instanceof StreamClosedError ? 'the connection closed' : (err as Error).message
    throw new HandshakeError(`handshake with peer ${peerNode() ?? opts.peerId} failed: ${why}`, opts.peerId, peerNode())
  }
}

/** The dialer's side, on a stream it opened. */
export async function initiateHandshake (stream: Stream, opts: HandshakeOptions): Promise<HandshakeResult> {
  const control = new FrameStream(stream, MAX_HANDSHAKE_FRAME_BYTES)
  let remote: Hello | null = null
  return await withDeadline(opts, async signal => {
    await control.write(encodeHello(opts.local), { signal })
    remote = decodeHello(await control.next({ signal }), opts.peerId)
    const theirs = decodeVerdict(await control.next({ signal }), opts.peerId)
    const mine = judge(opts, remote)
    await control.write(encodeVerdict(mine), { signal })
    if (mine !== null) throw mine
    if (!theirs.ok) throw refusedBy(remote, theirs, opts.peerId)
    return { hello: remote, control }
  }, () => remote?.node ?? null)
}

/** The listener's side, on an inbound handshake stream. */
export async function answerHandshake (stream: Stream, opts: HandshakeOptions): Promise<HandshakeResult> {
  const control = new FrameStream(stream, MAX_HANDSHAKE_FRAME_BYTES)
  let remote: Hello | null = null
  return await withDeadline(opts, async signal => {
    remote = decodeHello(await control.next({ signal }), opts.peerId)
    const mine = judge(opts, remote)
    await control.write(encodeHello(opts.local), { signal })
    await control.write(encodeVerdict(mine), { signal })
    let theirs: Verdict
    try {
      theirs = decodeVerdict(await control.next({ signal }), opts.peerId)
    } catch (err) {
      // Our own refusal is the better explanation than the dialer hanging up on it.
      if (mine !== null) throw mine
      throw err
    }
    if (mine !== null) throw mine
    if (!theirs.ok) throw refusedBy(remote, theirs, opts.peerId)
    return { hello: remote, control }
  }, () => remote?.node ?? null)
}
