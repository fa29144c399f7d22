/**
 * Every decoder of bytes that come from the network or a peer, as the
 * receiving code calls it, with an arbitrary of valid values for its real
 * encoder and the named error its contract allows. Shared by the fuzz bench
 * (bench/fuzz.ts) and the short fuzz test (test/fuzz-decoders.test.ts).
 *
 * Not here, and why:
 * - raft/storage (WAL records, snapshot files): bytes from this node's own
 *   disk, checked by CRC; covered by the WAL tests and the simulator.
 * - the coordination snapshot (lib/coordination/state.ts restore): Raft
 *   state installed from the leader, authoritative by the protocol; it is
 *   not a frame that can be dropped.
 * - the session keep-alive body (lib/session.ts): a non-fatal UTF-8 decode
 *   that cannot throw, then a prefix check with a named error.
 * - queue payloads (lib/queues): the application's own msgpack, proposed
 *   through decodeEnvelope (fuzzed below as bytes ≤ the payload limit).
 */
import fc from 'fast-check'
import { isDeepStrictEqual } from 'node:util'
import { Packr } from 'msgpackr'
import { decodeChannelBatch, channelMessageId, encodeChannelBatch, type ChannelBatch } from '../../gossip/channel-codec.js'
import { HandshakeError, NodeIdConflictError, ProtocolFrameError, VersionMismatchError } from '../../gossip/errors.js'
import { decodeControl, decodeHello, decodeVerdict, encodeControl, encodeHello, encodeVerdict, type ControlFrame, type Hello } from '../../gossip/handshake.js'
import { FrameDecoder, lengthPrefixed } from '../../gossip/length-prefix.js'
import { decodeRaftMessage, encodeRaftMessage, InvalidFrameError } from '../../gossip/raft-codec.js'
import { decodeRpcFrame, encodeRpcFrame, type RpcFrame } from '../../gossip/rpc-codec.js'
import type { Message } from '../../raft/index.js'
import {
  decodeSyncPush, decodeSyncRequest, decodeSyncResponse, decodeUpdate, encodeSyncPush, encodeSyncRequest, encodeSyncResponse, encodeUpdate,
  type CacheUpdate, type SyncPush, type SyncRequest, type SyncResponse, type WireEntry
} from '../../lib/cache/cache-codec.js'
import { DIGEST_BYTES } from '../../lib/cache/digest.js'
import type { Hlc } from '../../lib/cache/hlc.js'
import { decodeEnvelope, encodeEnvelope, InvalidCommandError, type Envelope, type SingleCommand } from '../../lib/coordination/commands.js'
import {
  decodeBody, decodeFetchRequest, decodeFetchResponse, decodeHead, decodeSignedEvent, encodeBody, encodeFetchRequest, encodeFetchResponse, encodeHead, encodeSignedEvent,
  type EventBody, type FetchRequest, type FetchResponse, type Head, type SignedEvent
} from '../../lib/events/event-codec.js'
import { decodeInfo, encodeInfo, type NodeInfo } from '../../lib/formation.js'

export interface FuzzTarget {
  readonly name: string
  /** The production code that calls the decoder on received bytes, and what it does with a failure. */
  readonly path: string
  /** Valid frames, each made by the real encoder, with what decoding it must give back. */
  readonly valid: fc.Arbitrary<{ readonly bytes: Uint8Array, readonly expect: unknown }>
  readonly decode: (bytes: Uint8Array) => unknown
  /** The error the decoder's contract names for a bad frame; anything else thrown is a crash. */
  readonly rejects: (err: unknown) => boolean
}

function target<T> (name: string, path: string, valid: fc.Arbitrary<T>, encode: (v: T) => Uint8Array, decode: (b: Uint8Array) => unknown,
  rejects: (err: unknown) => boolean, expect: (v: T) => unknown = v => v): FuzzTarget {
  return { name, path, valid: valid.map(v => ({ bytes: encode(v), expect: expect(v) })), decode, rejects }
}

/** Deep equality of what was encoded and what was decoded, blind to prototypes (fast-check makes some records without one, msgpackr makes Buffers). */
export function sameDecoded (a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(plain(a), plain(b))
}

function plain (v: unknown): unknown {
  if (v instanceof Uint8Array) return Uint8Array.from(v)
  if (Array.isArray(v)) return v.map(plain)
  if (typeof v !== 'object' || v === null) return v
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
}

const isProtocolError = (e: unknown): boolean => e instanceof ProtocolFrameError
const isHandshakeError = (e: unknown): boolean => e instanceof HandshakeError
/** Strings as peers send them: any code points, so UTF-8 of 1 to 4 bytes each. */
const text = (minLength: number, maxLength: number): fc.Arbitrary<string> => fc.string({ unit: 'binary', minLength, maxLength })
const id = text(1, 40)
const nat = fc.oneof(fc.nat(1000), fc.maxSafeNat())
const bytes = (maxLength: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength })

// ---- gossip/length-prefix.ts: the framing of every long-lived stream ----

const STREAM_LIMIT = 64 * 1024
/** Feeds a byte stream in uneven chunks, as the network delivers it. */
function splitStream (data: Uint8Array): Uint8Array[] {
  const d = new FrameDecoder(STREAM_LIMIT)
  const frames: Uint8Array[] = []
  for (let off = 0, n = 1; off < data.byteLength; off += n, n = (n * 7 + 3) % 97 + 1) {
    for (const f of d.push(data.subarray(off, off + n))) frames.push(Uint8Array.from(f))
  }
  return frames
}
const streamFraming = target('stream-framing', 'FrameDecoder.push in raft-transport, rpc-inbound, rpc-link, frame-stream: stream aborted, counted in badFrames',
  fc.array(bytes(300), { maxLength: 8 }), fs => Buffer.concat(fs.map(lengthPrefixed)), splitStream, isProtocolError,
  // An empty frame carries nothing and is skipped.
  fs => fs.filter(f => f.byteLength > 0).map(f => Uint8Array.from(f)))

// ---- gossip/raft-codec.ts ----

const env = { from: id, to: id, term: nat }
const entry = fc.record({ index: fc.constant(0), term: nat, type: fc.constantFrom(0 as const, 1 as const, 2 as const), data: bytes(64) })
const raftMessage: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constantFrom('PreVote' as const, 'Vote' as const), ...env, lastIndex: nat, lastTerm: nat, force: fc.boolean() }),
  fc.record({ type: fc.constantFrom('PreVoteResp' as const, 'VoteResp' as const), ...env, reject: fc.boolean() }),
  fc.record({ type: fc.constant('Append' as const), ...env, prevIndex: fc.nat(1e9), prevTerm: nat, entries: fc.array(entry, { maxLength: 4 }), commit: nat })
    .map(m => ({ ...m, entries: m.entries.map((e, i) => ({ ...e, index: m.prevIndex + 1 + i })) })),
  fc.record({ type: fc.constant('AppendResp' as const), ...env, reject: fc.boolean(), index: nat, hintIndex: nat, hintTerm: nat }),
  fc.record({ type: fc.constant('Heartbeat' as const), ...env, commit: nat, readSeq: nat, quiesce: fc.boolean() }),
  fc.record({ type: fc.constant('HeartbeatResp' as const), ...env, readSeq: nat }),
  fc.record({ type: fc.constant('Commit' as const), ...env, commit: nat }),
  fc.record({ type: fc.constant('Snapshot' as const), ...env, meta: fc.record({ index: nat, term: nat, config: fc.record({ voters: fc.array(id, { maxLength: 5 }), learners: fc.array(id, { maxLength: 3 }) }) }), offset: fc.nat(1e6), chunk: bytes(256), total: fc.nat(1e6) })
    .map(m => ({ ...m, total: m.offset + m.chunk.byteLength + m.total })),
  fc.record({ type: fc.constant('SnapshotResp' as const), ...env, snapshotIndex: nat, offset: nat }),
  fc.record({ type: fc.constant('ReadIndex' as const), ...env, ctx: text(0, 40) }),
  fc.record({ type: fc.constant('ReadIndexResp' as const), ...env, ctx: text(0, 40), index: fc.integer({ min: -1, max: 1e9 }) }),
  fc.record({ type: fc.constant('TimeoutNow' as const), ...env })
)
const raft = target('raft-message', 'Libp2pRaftTransport.onFrame: dropped, counted in badFrames', raftMessage, encodeRaftMessage, decodeRaftMessage, e => e instanceof InvalidFrameError)

// ---- gossip/rpc-codec.ts ----

const RPC_BODY_LIMIT = 1024 * 1024
const callId = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })
const rpcFrame: fc.Arbitrary<RpcFrame> = fc.oneof(
  fc.record({ t: fc.constant('request' as const), id: callId, method: text(1, 60), body: bytes(512) }),
  fc.record({ t: fc.constant('result' as const), id: callId, body: bytes(512) }),
  fc.record({ t: fc.constant('failure' as const), id: callId, kind: fc.constantFrom(0 as const, 1 as const, 2 as const), name: text(0, 60), code: text(0, 60), message: text(0, 300) }),
  fc.record({ t: fc.constant('cancel' as const), id: callId })
)
const rpc = target('rpc-frame', 'InboundCalls.onFrame and RpcLink.onFrame: dropped, counted in badFrames', rpcFrame, encodeRpcFrame, b => decodeRpcFrame(b, RPC_BODY_LIMIT), isProtocolError)

// ---- gossip/handshake.ts ----

const hello: fc.Arbitrary<Hello> = fc.record({
  cluster: text(1, 60),
  protocol: fc.nat(1_000_000),
  app: text(1, 30),
  node: text(1, 60),
  addrs: fc.array(text(0, 60), { maxLength: 16 }),
  // createMeshNode refuses a __proto__ key: msgpackr renames it when decoding.
  meta: fc.dictionary(text(1, 30).filter(k => k !== '__proto__'), text(0, 100), { maxKeys: 16 })
})
const helloTarget = target('handshake-hello', 'initiateHandshake/answerHandshake: HandshakeError, the connection refused and reported', hello, encodeHello, b => decodeHello(b, 'peer'), isHandshakeError)
const refusal: fc.Arbitrary<HandshakeError | null> = fc.oneof(
  fc.constant(null),
  text(0, 1100).map(m => new HandshakeError(m, 'peer')),
  text(0, 200).map(m => new NodeIdConflictError(m, 'peer')),
  fc.tuple(text(1, 30), text(1, 30)).map(([a, b]) => new VersionMismatchError('app', 'node', a, b, 'peer'))
)
const verdict = target('handshake-verdict', 'initiateHandshake/answerHandshake: HandshakeError, the connection refused and reported', refusal, encodeVerdict, b => decodeVerdict(b, 'peer'), isHandshakeError,
  err => err === null ? { t: 'verdict', ok: true } : { t: 'verdict', ok: false, code: err.code, message: err.message.slice(0, 1024) })
const controlFrame: fc.Arbitrary<ControlFrame> = fc.oneof(
  fc.constant({ t: 'bye' as const }),
  fc.constant({ t: 'bye-seen' as const }),
  fc.constant({ t: 'alive' as const }),
  fc.record({ t: fc.constant('peers' as const), peers: fc.array(fc.record({ id: text(1, 60), addrs: fc.array(text(0, 60), { maxLength: 4 }) }), { maxLength: 8 }) })
)
const control = target('handshake-control', 'Admission control stream onFrame: dropped, logged', controlFrame, encodeControl, b => decodeControl(b, 'peer'), isHandshakeError)

// ---- gossip/channel-codec.ts ----

const channelBatch: fc.Arbitrary<ChannelBatch> = fc.record({
  publisher: text(1, 60),
  incarnation: text(1, 16),
  firstSeq: fc.integer({ min: 1, max: 2 ** 40 }),
  starts: fc.array(fc.tuple(text(1, 60), fc.integer({ min: 1, max: 2 ** 40 })), { maxLength: 4 }),
  items: fc.array(bytes(200), { minLength: 1, maxLength: 8 })
}).map(b => ({ ...b, starts: b.starts.map(([r, s]) => [r, Math.min(s, b.firstSeq)] as const) }))
const channel = target('channel-batch', 'gossipsub msgIdFn (channelMessageId, must not throw), then GossipChannel.validate: rejected, counted in badMessages',
  channelBatch, encodeChannelBatch, b => {
    channelMessageId({ topic: 'fuzz', data: b })
    return decodeChannelBatch(b)
  }, isProtocolError)

// ---- lib/cache/cache-codec.ts ----

const hlc: fc.Arbitrary<Hlc> = fc.record({ ms: fc.maxSafeNat(), c: fc.maxSafeNat(), node: text(1, 60) })
const cacheUpdate: fc.Arbitrary<CacheUpdate> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key: bytes(40), value: bytes(200), hlc }),
  fc.record({ op: fc.constant('delete' as const), key: bytes(40), hlc }),
  fc.record({ op: fc.constant('clear' as const), hlc }),
  fc.record({ op: fc.constant('invalidate' as const), key: bytes(40) }),
  fc.constant({ op: 'invalidate-all' as const })
)
const wireEntry: fc.Arbitrary<WireEntry> = fc.record({ key: bytes(40), value: fc.option(bytes(100)), hlc })
const floor = fc.option(hlc)
const cacheUpdateTarget = target('cache-update', 'Replicated/InvalidationBackend.onGossip: dropped, counted in rejected', cacheUpdate, encodeUpdate, decodeUpdate, isProtocolError)
/** A digest-sized run of bytes from a 32-bit seed: fast-check drawing every byte of it costs ms per frame. */
const digest = fc.integer().map(seed => {
  const out = new Uint8Array(DIGEST_BYTES)
  let x = seed | 1
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
})
const syncRequest = target('cache-sync-request', 'ReplicatedBackend.serveSync (rpc handler): the call fails, counted in handlerErrors',
  fc.record({ digest, floor }) as fc.Arbitrary<SyncRequest>, encodeSyncRequest, decodeSyncRequest, isProtocolError)
const syncResponse = target('cache-sync-response', 'ReplicatedBackend.exchange: the exchange fails, counted in syncFailures',
  fc.record({ floor, buckets: fc.array(fc.nat(255), { maxLength: 16 }), entries: fc.array(wireEntry, { maxLength: 6 }), more: fc.boolean() }) as fc.Arbitrary<SyncResponse>,
  encodeSyncResponse, decodeSyncResponse, isProtocolError)
const syncPush = target('cache-sync-push', 'ReplicatedBackend.servePush (rpc handler): the call fails, counted in handlerErrors',
  fc.record({ floor, entries: fc.array(wireEntry, { maxLength: 6 }) }) as fc.Arbitrary<SyncPush>, encodeSyncPush, decodeSyncPush, isProtocolError)

// ---- lib/events/event-codec.ts ----

const incarnation = text(1, 16)
const seq = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })
const signedEvent = target('event-signed', 'EventBus.authenticate: dropped, counted in malformed',
  fc.record({ body: bytes(300), signature: bytes(1024) }) as fc.Arbitrary<SignedEvent>, encodeSignedEvent, decodeSignedEvent, isProtocolError)
/**
 * Payloads as applications publish them, less the two things msgpack does
 * not carry exactly: -0 (packed as 0) and a `__proto__` key (msgpackr
 * renames it `__proto_`, against prototype pollution).
 */
const payload = fc.jsonValue({ maxDepth: 3 }).filter(v => !hasNegativeZero(v) && !hasProtoKey(v))
const eventBody = target('event-body', 'EventBus.authenticate (after the signature): dropped, counted in malformed',
  fc.record({ incarnation, seq, topic: text(1, 80), payload }) as fc.Arbitrary<EventBody>, encodeBody, decodeBody, isProtocolError)
const fetchRequest = target('event-fetch-request', 'EventBus.serveFetch (rpc handler): the call fails, counted in handlerErrors',
  fc.tuple(incarnation, seq, seq).map(([i, a, b]) => ({ incarnation: i, from: Math.min(a, b), to: Math.max(a, b) })) as fc.Arbitrary<FetchRequest>,
  encodeFetchRequest, decodeFetchRequest, isProtocolError)
const fetchResponse = target('event-fetch-response', 'EventInbound.repair: retried, then the range reported as a gap',
  fc.record({ incarnation, events: fc.array(bytes(200), { maxLength: 8 }) }) as fc.Arbitrary<FetchResponse>, encodeFetchResponse, decodeFetchResponse, isProtocolError)
const head = target('event-head', 'EventBus.askHead: retried, then the stream starts from gossip',
  fc.tuple(incarnation, fc.nat(1e9), fc.nat(1e9)).map(([i, a, b]) => ({ incarnation: i, seq: Math.max(a, b), since: Math.min(a, b) })) as fc.Arbitrary<Head>,
  encodeHead, decodeHead, isProtocolError)

// ---- lib/coordination/commands.ts: proposals forwarded to the leader ----

const name = text(1, 60)
const fence = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })
const singleCommand: fc.Arbitrary<SingleCommand> = fc.oneof(
  fc.record({ op: fc.constant('open' as const), node: id, ttlMs: fc.integer({ min: 1, max: 24 * 3600_000 }) }),
  fc.constant({ op: 'close' as const }),
  fc.record({ op: fc.constant('acquire' as const), kind: fc.constantFrom('lock' as const, 'election' as const), name, owner: id, wait: fc.boolean() }),
  fc.record({ op: fc.constant('release' as const), kind: fc.constantFrom('lock' as const, 'election' as const), name, owner: id }),
  fc.record({ op: fc.constant('publish' as const), topic: name, payload: bytes(200) }),
  fc.record({ op: fc.constant('enqueue' as const), queue: name, id: fc.option(id), payload: bytes(200), delayMs: fc.nat(1e9), maxAttempts: fc.integer({ min: 1, max: 1000 }) }),
  fc.record({ op: fc.constant('claim' as const), queue: name, owner: id, visibilityMs: fc.integer({ min: 100, max: 1e6 }), max: fc.integer({ min: 1, max: 1024 }), wait: fc.boolean(), maxAttempts: fc.option(fc.integer({ min: 1, max: 1000 })) }),
  fc.record({ op: fc.constant('ack' as const), queue: name, id, fence }),
  fc.record({ op: fc.constant('nack' as const), queue: name, id, fence, delayMs: fc.nat(1e9), error: fc.option(text(0, 200)) }),
  fc.record({ op: fc.constant('requeue-dead' as const), queue: name, ids: fc.option(fc.array(id, { maxLength: 4 })) }),
  fc.record({ op: fc.constant('task-register' as const), task: name, spec: text(2, 40) }),
  fc.record({ op: fc.constant('task-done' as const), task: name, fence, outcome: fc.constantFrom('ok' as const, 'error' as const), error: fc.option(text(0, 200)) }),
  fc.record({ op: fc.constant('file-put' as const), path: text(1, 100), data: bytes(300) }),
  fc.record({ op: fc.constant('file-delete' as const), path: text(1, 100) })
)
const envelope: fc.Arbitrary<Envelope> = fc.record({
  c: text(0, 60),
  s: fc.maxSafeNat(),
  lo: fc.maxSafeNat(),
  cmd: fc.oneof({ weight: 4, arbitrary: singleCommand }, { weight: 1, arbitrary: fc.array(singleCommand, { minLength: 1, maxLength: 4 }).map(cmds => ({ op: 'batch' as const, cmds })) })
})
const command = target('command-envelope', 'Proposer.proposeAsLeader (rpc handler of forwarded proposals): the call fails, counted in handlerErrors',
  envelope, encodeEnvelope, decodeEnvelope, e => e instanceof InvalidCommandError)

// ---- lib/formation.ts ----

const info = target('formation-info', 'decideFormation: the member asked again at the next poll',
  fc.record({ formed: fc.boolean(), leader: fc.option(id) }) as fc.Arbitrary<NodeInfo>, encodeInfo, decodeInfo, isProtocolError)

// ---- application payloads: cache keys and values, event payloads ----

const appPackr = new Packr({ useRecords: false, mapsAsObjects: true })
const appPayload = target('app-payload', 'Cache sink.decodeKey/decodeValue and EventBus.deliverOrdered: every error caught, counted in rejected/malformed',
  payload, v => appPackr.pack(v), b => appPackr.unpack(b),
  // The caller catches whatever msgpackr throws; a non-Error thrown would still be a crash.
  e => e instanceof Error)

export const TARGETS: readonly FuzzTarget[] = [
  streamFraming, raft, rpc, helloTarget, verdict, control, channel,
  cacheUpdateTarget, syncRequest, syncResponse, syncPush,
  signedEvent, eventBody, fetchRequest, fetchResponse, head,
  command, info, appPayload
]

function hasNegativeZero (v: unknown): boolean {
  if (Object.is(v, -0)) return true
  if (typeof v !== 'object' || v === null) return false
  return Object.values(v).some(hasNegativeZero)
}

function hasProtoKey (v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false
  return Object.hasOwn(v, '__proto__') || Object.values(v).some(hasProtoKey)
}
