/**
 * The seam between lib/ and the mesh's request/response calls
 * (gossip/rpc.ts): what the Cluster's services need from it, and how to
 * recognise its failures without depending on its classes.
 */
export interface CallContext {
  /** Node id of the caller (it passed the join handshake). */
  readonly from: string
  readonly signal: AbortSignal
}

export type CallHandler = (body: Uint8Array, ctx: CallContext) => Promise<Uint8Array>

export interface MeshCalls {
  handle(method: string, handler: CallHandler): void
  call(nodeId: string, method: string, body: Uint8Array, opts?: { signal?: AbortSignal, timeoutMs?: number }): Promise<Uint8Array>
}

/** The name of the error a remote handler threw, when `err` carries one. */
export function remoteErrorName (err: unknown): string | null {
  const name = (err as { remoteName?: unknown } | null)?.remoteName
  return typeof name === 'string' ? name : null
}
