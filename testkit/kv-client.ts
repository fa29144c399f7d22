/**
 * A small HTTP client for kv-node clusters: keep-alive connections, follows
 * the 307 a follower answers with, and tries the next node when one is down.
 */
import { Agent, request } from 'node:http'

export interface KvResponse {
  readonly status: number
  readonly body: any
}

export class KvClient {
  private readonly agent: Agent
  private next = 0
  /** The node that last gave a definitive answer: most likely the leader. */
  private preferred: string | null = null

  /** `nodes` are host:port HTTP addresses; `maxSockets` caps the requests open to one node at once (default 128). */
  constructor (private readonly nodes: () => readonly string[], opts: { maxSockets?: number } = {}) {
    this.agent = new Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 128 })
  }

  /** One HTTP exchange with one node (bodies are sent as JSON when `json` is set). */
  raw (addr: string, method: string, path: string, body?: string, timeoutMs = 3000, json = false): Promise<KvResponse> {
    const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))]
    return new Promise((resolve, reject) => {
      const req = request({ host, port, method, path, agent: this.agent, headers: body === undefined ? {} : { 'content-length': Buffer.byteLength(body), ...(json ? { 'content-type': 'application/json' } : {}) } }, res => {
        const chunks: Buffer[] = []
        res.on('data', c => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString()
          let parsed: unknown = text
          try { parsed = JSON.parse(text) } catch {}
          resolve({ status: res.statusCode ?? 0, body: parsed })
        })
        res.on('error', reject)
      })
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${addr}${path} timed out after ${timeoutMs} ms`)))
      req.on('error', reject)
      req.end(body)
    })
  }

  /**
   * Sends a request to the cluster: starts at some node, follows redirects
   * to the leader, and moves on to another node on a connection error or 503.
   * Returns the first definitive answer; throws after `attempts` tries.
   */
  async send (method: string, path: string, body?: string, opts: { attempts?: number, timeoutMs?: number } = {}): Promise<KvResponse> {
    const attempts = opts.attempts ?? 6
    let addr = this.preferred !== null && this.nodes().includes(this.preferred) ? this.preferred : this.pick()
    let last: Error | null = null
    for (let i = 0; i < attempts; i++) {
      try {
        const r = await this.raw(addr, method, path, body, opts.timeoutMs)
        if (r.status === 307 && typeof r.body?.location === 'string') {
          addr = new URL(r.body.location as string).host
          continue
        }
        if (r.status === 503) {
          last = new Error(`503 from ${addr}: ${JSON.stringify(r.body)}`)
          if (addr === this.preferred) this.preferred = null
          addr = this.pick()
          await new Promise(resolve => setTimeout(resolve, 20))
          continue
        }
        this.preferred = addr
        return r
      } catch (err) {
        last = err as Error
        if (addr === this.preferred) this.preferred = null
        addr = this.pick()
      }
    }
    throw last ?? new Error(`${method} ${path}: no answer`)
  }

  private pick (): string {
    const ns = this.nodes()
    return ns[this.next++ % ns.length]
  }

  close (): void {
    this.agent.destroy()
  }
}
