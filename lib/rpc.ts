/**
 * The direct request/response calls lib/ services make to one member (gap
 * repair from a publisher's buffer, cache anti-entropy). This is the shape
 * of gossip/rpc.ts's `MeshRpc`, declared here so the services depend on the
 * contract and not on one implementation: a `MeshRpc` satisfies it as is.
 */

/** What a handler learns about the call besides its body. */
export interface RpcCallContext {
  /** Node id of the calling member (authenticated by its connection). */
  readonly from: string
  /** Aborts when the caller gives up or the connection closes. */
  readonly signal: AbortSignal
}

export type RpcHandler = (body: Uint8Array, ctx: RpcCallContext) => Promise<Uint8Array>

export interface RpcCallOptions {
  readonly signal?: AbortSignal
  readonly timeoutMs?: number
}

export interface Rpc {
  /** Serves `method` on this node. */
  handle: (method: string, handler: RpcHandler) => void
  /**
   * Calls `method` on member `nodeId`. Rejects with PeerUnavailableError,
   * RpcTimeoutError or RemoteCallError (the handler threw, or the member does
   * not serve the method).
   */
  call: (nodeId: string, method: string, body: Uint8Array, opts?: RpcCallOptions) => Promise<Uint8Array>
}
