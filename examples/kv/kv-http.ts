/**
 * The kv-node HTTP API. Writes and linearizable reads are served by the
 * leader; other nodes redirect there (307) or, knowing no leader, answer 503.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { z } from 'zod'
import { LeadershipLostError, NotLeaderError, StoppedError, TransferInProgressError } from '../../raft/errors.js'
import type { RaftNode } from '../../raft/index.js'
import { encodeCommand, MAX_KEY, MAX_VALUE, type KvCommand } from './kv-command.js'
import type { KvApplyResult, KvState } from './kv-state.js'

export interface KvHttpOptions {
  readonly raft: RaftNode<KvApplyResult | null>
  readonly state: KvState
  /** host:port of a node's HTTP API, or null when unknown. */
  readonly httpAddrOf: (nodeId: string) => string | null
  readonly status: () => unknown
}

class HttpError extends Error {
  constructor (readonly status: number, message: string, readonly body: Record<string, unknown> = { error: message }) {
    super(message)
  }
}

const casBody = z.strictObject({ expect: z.string().max(MAX_VALUE).nullable(), value: z.string().max(MAX_VALUE) })

function send (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

/**
 * The request body as text. Events rather than `for await`: the async
 * iterator costs several promise turns per request on the write path. A body
 * over the limit is refused with 413 at once; the rest of it is read and
 * dropped, so the connection stays usable for the answer.
 */
async function readBody (req: IncomingMessage): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let tooLarge = false
    req.on('data', (chunk: Buffer) => {
      if (tooLarge) return
      size += chunk.byteLength
      if (size <= MAX_VALUE + 1024) {
        chunks.push(chunk)
        return
      }
      tooLarge = true
      chunks.length = 0
      reject(new HttpError(413, `body larger than ${MAX_VALUE} bytes`))
    })
    req.on('end', () => { resolve(Buffer.concat(chunks, size).toString('utf8')) })
    req.on('error', reject)
  })
}

export function createKvHttpServer (o: KvHttpOptions): Server {
  /** Sends non-leader requests to the leader, or explains there is none. */
  const requireLeader = (path: string): void => {
    if (o.raft.isLeader) return
    const leader = o.raft.leader
    const addr = leader === null ? null : o.httpAddrOf(leader)
    if (leader !== null && addr !== null) throw new HttpError(307, `leader is ${leader}`, { leader, location: `http://${addr}${path}` })
    throw new HttpError(503, 'no leader is known', { leader })
  }

  const propose = async (cmd: KvCommand): Promise<KvApplyResult> => {
    const { result } = await o.raft.propose(encodeCommand(cmd), { timeoutMs: 10_000 })
    if (result === null || result === undefined) throw new HttpError(500, 'the command was not applied')
    return result
  }

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://local')
    if (url.pathname === '/status' && req.method === 'GET') {
      send(res, 200, o.status())
      return
    }
    const m = /^\/kv\/([^/]+)(\/cas)?$/.exec(url.pathname)
    if (m === null) throw new HttpError(404, `no route ${req.method ?? ''} ${url.pathname}`)
    const key = decodeURIComponent(m[1])
    if (key.length > MAX_KEY) throw new HttpError(400, `key longer than ${MAX_KEY}`)
    const path = url.pathname + url.search
    if (m[2] !== undefined) {
      if (req.method !== 'POST') throw new HttpError(405, 'cas needs POST')
      let body: z.infer<typeof casBody>
      try {
        body = casBody.parse(JSON.parse(await readBody(req)))
      } catch (err) {
        if (err instanceof HttpError) throw err
        throw new HttpError(400, 'cas body must be {"expect": string|null, "value": string}')
      }
      requireLeader(path)
      const r = await propose({ op: 'cas', key, expect: body.expect, value: body.value })
      if (r.ok) send(res, 200, { ok: true, index: r.index })
      else send(res, 409, { ok: false, value: r.value })
      return
    }
    switch (req.method) {
      case 'GET': {
        if (url.searchParams.get('stale') !== '1') {
          requireLeader(path)
          await o.raft.readBarrier({ timeoutMs: 5000 })
        }
        const v = o.state.get(key)
        if (v === undefined) send(res, 404, { error: 'not found' })
        else send(res, 200, { value: v.value, index: v.index })
        return
      }
      case 'PUT': {
        const value = await readBody(req)
        requireLeader(path)
        const r = await propose({ op: 'put', key, value })
        send(res, 200, { index: r.index })
        return
      }
      case 'DELETE': {
        requireLeader(path)
        const r = await propose({ op: 'delete', key })
        send(res, 200, { index: r.index })
        return
      }
      default:
        throw new HttpError(405, `method ${req.method ?? ''} not allowed`)
    }
  }

  return createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) {
        const headers: Record<string, string> = typeof err.body.location === 'string' ? { location: err.body.location } : {}
        send(res, err.status, err.body, headers)
      } else if (err instanceof NotLeaderError || err instanceof TransferInProgressError) {
        send(res, 503, { error: err.message, leader: err instanceof NotLeaderError ? err.leader : null })
      } else if (err instanceof LeadershipLostError || err instanceof StoppedError) {
        // The outcome of a write may be unknown: say so rather than guess.
        send(res, 503, { error: err.message, outcome: 'unknown' })
      } else {
        send(res, 500, { error: (err as Error).message })
      }
    })
  })
}
