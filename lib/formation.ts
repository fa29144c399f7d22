/**
 * How a node becomes part of the Raft group the first time.
 *
 * - A data directory that already holds a Raft log: the node restarts as
 *   what it was.
 * - `voters`: the listed nodes bootstrap the same initial configuration;
 *   anyone else joins as a learner.
 * - `expect: N`: the node waits until it sees N nodes of its cluster that
 *   have never formed a group (itself included) and none that has, then the
 *   N smallest node ids bootstrap, whatever order they started in; the
 *   others join as learners. A node that sees an already formed group joins
 *   it. The view must hold still for SETTLE_MS before anyone decides, so
 *   that nodes starting together decide on the same set; as with Consul's
 *   bootstrap_expect, start at most N nodes before the group has formed.
 */
import { readdir } from 'node:fs/promises'
import { ProtocolFrameError } from '../gossip/errors.js'
import type { Logger } from '../gossip/logger.js'
import { errorFields } from '../gossip/logger.js'
import type { MeshNode } from '../gossip/node.js'
import type { MeshCalls } from './mesh-calls.js'

export const INFO_METHOD = 'cluster.info'
const POLL_MS = 200
const SETTLE_MS = 1000

export interface NodeInfo {
  /** This node runs Raft with a configuration (it bootstrapped, joined or restarted). */
  readonly formed: boolean
  readonly leader: string | null
}

export type Formation =
  | { readonly kind: 'restart' }
  | { readonly kind: 'bootstrap', readonly voters: readonly string[] }
  | { readonly kind: 'join' }

export async function hasRaftState (raftDir: string): Promise<boolean> {
  try {
    return (await readdir(raftDir)).length > 0
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

export function encodeInfo (info: NodeInfo): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(info))
}

/** A member's answer; ProtocolFrameError if it is not a JSON object (the member is asked again at the next poll). */
export function decodeInfo (bytes: Uint8Array): NodeInfo {
  let raw: unknown
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes))
  } catch (err) {
    throw new ProtocolFrameError(`node info is not JSON: ${(err as Error).message.slice(0, 100)}`)
  }
  if (typeof raw !== 'object' || raw === null) throw new ProtocolFrameError('node info is not an object')
  const o = raw as Partial<NodeInfo>
  return { formed: o.formed === true, leader: typeof o.leader === 'string' ? o.leader : null }
}

export interface FormationOptions {
  readonly nodeId: string
  readonly raftDir: string
  readonly voters?: readonly string[]
  readonly expect?: number
  readonly mesh: MeshNode
  readonly calls: MeshCalls
  readonly log: Logger
  readonly signal: AbortSignal
}

export async function decideFormation (o: FormationOptions): Promise<Formation> {
  if (await hasRaftState(o.raftDir)) return { kind: 'restart' }
  if (o.voters !== undefined) return o.voters.includes(o.nodeId) ? { kind: 'bootstrap', voters: o.voters } : { kind: 'join' }
  const n = o.expect ?? 1
  if (n === 1) return { kind: 'bootstrap', voters: [o.nodeId] }
  let last = ''
  let stableSince = 0
  for (;;) {
    o.signal.throwIfAborted()
    const fresh = [o.nodeId]
    let formed = false
    for (const m of o.mesh.members()) {
      try {
        const info = decodeInfo(await o.calls.call(m.nodeId, INFO_METHOD, new Uint8Array(0), { timeoutMs: 1000, signal: o.signal }))
        if (info.formed) formed = true
        else fresh.push(m.nodeId)
      } catch (err) {
        o.signal.throwIfAborted()
        o.log.debug({ member: m.nodeId, ...errorFields(err) }, 'no info from member yet')
      }
    }
    if (formed) return { kind: 'join' }
    const candidates = fresh.sort().slice(0, n)
    const key = candidates.join(',')
    if (fresh.length >= n) {
      if (key !== last) {
        last = key
        stableSince = Date.now()
      } else if (Date.now() - stableSince >= SETTLE_MS) {
        o.log.info({ voters: candidates }, 'forming the cluster')
        return candidates.includes(o.nodeId) ? { kind: 'bootstrap', voters: candidates } : { kind: 'join' }
      }
    } else {
      last = ''
    }
    await sleep(POLL_MS, o.signal)
  }
}

export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(t); reject(signal?.reason as Error) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
