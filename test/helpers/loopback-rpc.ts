/**
 * Direct calls between mesh nodes of one process, for lib/ service tests
 * until gossip/rpc.ts (MeshRpc, over libp2p streams) is on main: a call is
 * handed to the callee's handler in-process, and only if the caller's
 * membership sees the callee alive, so partitions made with the fault
 * layer cut calls as they cut gossip. It satisfies lib/rpc.ts's Rpc.
 */
import type { MeshNode } from '../../gossip/node.js'
import type { Rpc, RpcCallOptions, RpcHandler } from '../../lib/rpc.js'

export class PeerUnavailableError extends Error {
  override readonly name = 'PeerUnavailableError'
}

export class RemoteCallError extends Error {
  override readonly name = 'RemoteCallError'
}

export class LoopbackNetwork {
  private readonly handlers = new Map<string, Map<string, RpcHandler>>()
  /** Calls made, by method. */
  readonly calls = new Map<string, number>()

  /** The Rpc of one mesh node on this network. */
  rpc (mesh: MeshNode): Rpc {
    const mine = new Map<string, RpcHandler>()
    this.handlers.set(mesh.nodeId, mine)
    return {
      handle: (method, handler) => { mine.set(method, handler) },
      call: async (nodeId, method, body, opts: RpcCallOptions = {}) => {
        this.calls.set(method, (this.calls.get(method) ?? 0) + 1)
        if (!mesh.membership.isAlive(nodeId)) throw new PeerUnavailableError(`${nodeId} is not a live member of ${mesh.nodeId}'s view`)
        const handler = this.handlers.get(nodeId)?.get(method)
        if (handler === undefined) throw new RemoteCallError(`${nodeId} does not serve ${method}`)
        const ac = new AbortController()
        opts.signal?.addEventListener('abort', () => { ac.abort() })
        try {
          // Copies, as bytes off a stream would be.
          return new Uint8Array(await handler(new Uint8Array(body), { from: mesh.nodeId, signal: ac.signal }))
        } catch (err) {
          throw new RemoteCallError(`${nodeId} ${method}: ${(err as Error).message}`)
        }
      }
    }
  }
}
