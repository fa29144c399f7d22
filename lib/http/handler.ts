/**
 * `cluster.httpHandler()`: status, metrics, the dashboard and the health
 * probes for node:http (and for Connect/Express, which pass `next`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { InvalidArgumentError } from '../errors.js'
import { bearerTokenCheck } from './bearer-token.js'
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard-page.js'
import { DEFAULT_MAX_APPLY_LAG, probe, type Probe } from './health.js'
import { EventStreams, type EventStreamSource } from './sse.js'

export interface HttpHandlerOptions {
  /**
   * Every request must carry `Authorization: Bearer <token>` (compared in
   * constant time), else 401. A browser cannot add the header itself: put
   * the dashboard behind a proxy or the server's own authentication that does.
   */
  readonly token?: string
  /** Let `/health/*` through without the token, for load balancers that cannot send headers. Default false. */
  readonly publicHealth?: boolean
  /** Dashboard event streams open at once on this handler; more are refused with 503. Default 16. */
  readonly maxEventStreams?: number
  /** How often open event streams get a fresh status snapshot. Default 1000 ms. */
  readonly statusEveryMs?: number
  /** `/health/ready` tolerates this many committed entries not yet applied. Default 512. */
  readonly maxApplyLag?: number
}

/**
 * Answers `GET` on `/cluster/status` (JSON), `/cluster/metrics`
 * (Prometheus text), `/cluster/` (dashboard), `/cluster/events`
 * (server-sent events), `/health/alive`, `/health/started` and
 * `/health/ready` (200, or 503 with a JSON `reason`). Other methods get
 * 405. Other paths go to `next` when given, else 404. It never throws:
 * a failure becomes a 500.
 */
export type ClusterHttpHandler = (req: IncomingMessage, res: ServerResponse, next?: () => void) => void

export interface HttpSource extends EventStreamSource {
  metrics(): Promise<{ contentType: string, text: string }>
}

export function createHttpHandler (source: HttpSource, opts: HttpHandlerOptions = {}): { handler: ClusterHttpHandler, close(): void } {
  // RFC 6750's b64token: anything else could never arrive intact as one bearer credential.
  if (opts.token !== undefined && (typeof opts.token !== 'string' || !/^[\w.~+/-]+=*$/.test(opts.token))) throw new InvalidArgumentError('token must be a non-empty string of letters, digits and -._~+/ (then any =)')
  const maxApplyLag = count('maxApplyLag', opts.maxApplyLag, DEFAULT_MAX_APPLY_LAG, 0)
  const authorized = bearerTokenCheck(opts.token)
  const streams = new EventStreams(source, {
    maxStreams: count('maxEventStreams', opts.maxEventStreams, 16, 1),
    statusEveryMs: count('statusEveryMs', opts.statusEveryMs, 1000, 1),
    maxBufferedBytes: 1024 * 1024
  })

  const route = (req: IncomingMessage, res: ServerResponse, path: string): void => {
    const isHealth = path.startsWith('/health/')
    if (!(isHealth && opts.publicHealth === true) && !authorized(req)) {
      res.setHeader('www-authenticate', 'Bearer')
      return json(res, 401, { error: 'a valid bearer token is required' })
    }
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET')
      return json(res, 405, { error: `${req.method ?? ''} is not allowed; use GET` })
    }
    if (isHealth) {
      const r = probe(path.slice('/health/'.length) as Probe, { status: source.status(), maxApplyLag })
      return r.ok ? json(res, 200, { status: 'UP' }) : json(res, 503, { status: 'DOWN', reason: r.reason })
    }
    switch (path) {
      case '/cluster': {
        // Relative links on the page (`events`) need the trailing slash.
        res.writeHead(308, { location: '/cluster/' }).end()
        return
      }
      case '/cluster/': {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': DASHBOARD_CSP })
        res.end(DASHBOARD_HTML)
        return
      }
      case '/cluster/status': {
        const s = source.status()
        return s === null ? json(res, 503, { error: 'the cluster node is stopped' }) : json(res, 200, s)
      }
      case '/cluster/events':
        return streams.serve(req, res, (status, reason) => { json(res, status, { error: reason }) })
      case '/cluster/metrics': {
        source.metrics().then(
          m => { res.writeHead(200, { 'content-type': m.contentType, 'cache-control': 'no-store' }).end(m.text) },
          err => { fail(res, err) })
      }
    }
  }

  const handler: ClusterHttpHandler = (req, res, next) => {
    try {
      const path = pathOf(req)
      if (path === null || !ROUTES.has(path)) {
        if (next !== undefined) return next()
        return json(res, 404, { error: 'not found' })
      }
      route(req, res, path)
    } catch (err) {
      fail(res, err)
    }
  }
  return { handler, close: () => { streams.close() } }
}

const ROUTES = new Set(['/cluster', '/cluster/', '/cluster/status', '/cluster/metrics', '/cluster/events', '/health/alive', '/health/started', '/health/ready'])

function pathOf (req: IncomingMessage): string | null {
  try {
    return new URL(req.url ?? '/', 'http://localhost').pathname
  } catch {
    return null
  }
}

function json (res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
  res.end(JSON.stringify(body))
}

function fail (res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  json(res, 500, { error: err instanceof Error ? `${err.name}: ${err.message}` : 'internal error' })
}

function count (name: string, v: number | undefined, dflt: number, min: number): number {
  if (v === undefined) return dflt
  if (!Number.isSafeInteger(v) || v < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${v}`)
  return v
}
