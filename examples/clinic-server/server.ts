/**
 * A small OpenMRS-like clinic server that embeds one raftmesh `Cluster` per
 * process and uses each service the way the OpenMRS clustering page asks:
 *
 * - an invalidation-mode entity cache in front of the shared database
 *   (`entity`: 100 s idle, 10,000 entries, as OpenMRS 2.8's template);
 * - a replicated cache for global settings;
 * - an HL7 inbound queue: any node accepts a message, some node imports it
 *   (once per message control id, with the claim's fence recorded);
 * - a cluster lock per patient identifier around each import, because the
 *   identifier is not unique in the schema (OpenMRS checks it in the
 *   application): two nodes importing admissions for one new patient would
 *   both find no patient and create two;
 * - a scheduled purge of old encounters that runs on one node per tick;
 * - events that keep every node's in-memory search index up to date;
 * - the replicated file store for configuration, mirrored to a folder;
 * - panic: on quorum loss the node stops serving (503) and exits;
 * - `/cluster/` (dashboard, status, metrics) and `/health/*` from the library.
 *
 *   node --import tsx examples/clinic-server/server.ts --node-id n1 \
 *     --data-dir /tmp/clinic/n1 --db /tmp/clinic/clinic.db --http-port 8081 \
 *     --mesh-port 7946 --expect 3 [--bootstrap /ip4/127.0.0.1/tcp/7946]
 *
 * The cluster secret comes from CLUSTER_SECRET (at least 32 bytes). With
 * DATABASE_URL (postgres://...) the nodes share PostgreSQL instead of --db.
 * Started with an IPC channel (as `npm start` does), it stops when its
 * parent goes away.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Cluster, PANIC_EXIT_CODE, type Job } from '../../lib/index.js'
import { openClinicDb, StaleWriteError, type Patient } from './database.js'
import { Hl7Error, parseAdmission } from './hl7.js'
import { SearchIndex } from './search-index.js'

const { values: args } = parseArgs({
  options: {
    'node-id': { type: 'string' },
    'data-dir': { type: 'string' },
    db: { type: 'string' },
    'http-port': { type: 'string', default: '8080' },
    'mesh-port': { type: 'string', default: '7946' },
    host: { type: 'string', default: '127.0.0.1' },
    bootstrap: { type: 'string', multiple: true, default: [] },
    expect: { type: 'string', default: '3' },
    'purge-every': { type: 'string' },
    'retention-days': { type: 'string', default: '365' }
  }
})
const required = (name: 'node-id' | 'data-dir'): string => {
  const v = args[name]
  if (v === undefined) { console.error(`--${name} is required`); process.exit(2) }
  return v
}
const nodeId = required('node-id')
const dataDir = required('data-dir')
const secret = process.env.CLUSTER_SECRET ?? ''
if (secret.length < 32) { console.error('CLUSTER_SECRET must hold at least 32 bytes'); process.exit(2) }

// Started with an IPC channel (as `npm start` does), the node goes when its parent does, also while it starts.
let parentGone = (): void => { process.exit(0) }
process.on('disconnect', () => { parentGone() })

const db = await openClinicDb({ url: process.env.DATABASE_URL, file: args.db }).catch((err: Error) => {
  console.error(err.message)
  process.exit(2)
})
let serving = true
const cluster = await Cluster.start({
  name: 'clinic',
  secret,
  nodeId,
  dataDir,
  listen: [`/ip4/${args.host}/tcp/${args['mesh-port']}`],
  bootstrap: args.bootstrap,
  expect: Number(args.expect),
  sessionTtlMs: 4000,
  panicAfterMs: 2000,
  onPanic: info => {
    // Stop serving first: nothing this node says may be trusted any more.
    serving = false
    console.error(`${nodeId}: quorum-loss panic (${info.reason}); stopping`)
    void shutdown(PANIC_EXIT_CODE)
  }
})

const patients = cluster.cache<number, Patient>('entity.patient', { mode: 'invalidation', idleMs: 100_000, maxEntries: 10_000 })
const settings = cluster.cache<string, string>('settings', { mode: 'replicated' })
const index = new SearchIndex()
for (const p of await db.allPatients()) index.put(p.id, p.name)
cluster.events.subscribe<{ id: number, name: string }>('patient.*', e => { index.put(e.payload.id, e.payload.name) })

const hl7 = cluster.queue<{ message: string }>('hl7-in', { maxAttempts: 3 })
const importer = hl7.process(async (job: Job<{ message: string }>) => {
  const a = parseAdmission(job.payload.message)
  const { outcome, patient } = await cluster.withLock(`patient-identifier/${a.identifier}`, async lock => {
    // A claim or lock that lapsed while this worker stalled must not commit: another node may hold it now.
    return await db.importAdmission(a, job.fence, nodeId, () => job.valid() && lock.valid())
  }, { timeoutMs: 10_000, signal: job.signal })
  if ((outcome === 'imported' || outcome === 'merged') && patient !== null) await savedEverywhere(patient)
}, { concurrency: 2, visibilityMs: 15_000 })

const purgeTask = 'purge-old-encounters'
const purgeEvery = args['purge-every']
cluster.schedule(purgeTask, purgeEvery === undefined ? { cron: '0 3 * * *' } : { every: Number(purgeEvery) }, async ({ fence, scheduledAt, signal }) => {
  signal.throwIfAborted()
  const before = scheduledAt - Number(args['retention-days']) * 86_400_000
  await db.purgeEncounters(before, purgeTask, fence, nodeId, scheduledAt, () => !signal.aborted).catch((err: unknown) => {
    if (!(err instanceof StaleWriteError)) throw err
    console.error(`${nodeId}: ${err.message}`)
  })
})

const mirror = cluster.files.mirror('config/', join(dataDir, 'config'))
const clusterHttp = cluster.httpHandler({ publicHealth: true })

async function savedEverywhere (p: Patient): Promise<void> {
  await patients.delete(p.id)
  await cluster.events.publish('patient.saved', { id: p.id, name: p.name })
}

async function body (req: IncomingMessage, limit = 256 * 1024): Promise<string> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const c of req) {
    size += (c as Buffer).length
    if (size > limit) throw new HttpError(413, `body over ${limit} bytes`)
    chunks.push(c as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}

async function json (req: IncomingMessage): Promise<Record<string, unknown>> {
  try {
    const v = JSON.parse(await body(req)) as unknown
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object')
    return v as Record<string, unknown>
  } catch (err) {
    if (err instanceof HttpError) throw err
    throw new HttpError(400, `a JSON object is expected: ${(err as Error).message}`)
  }
}

class HttpError extends Error {
  constructor (readonly status: number, message: string) { super(message) }
}

function text (v: unknown, name: string, max = 200): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new HttpError(400, `${name} must be a string of 1-${max} characters`)
  return v
}

async function route (req: IncomingMessage, res: ServerResponse): Promise<unknown> {
  const url = new URL(req.url ?? '/', 'http://x')
  const parts = url.pathname.split('/').filter(Boolean)
  const m = req.method ?? 'GET'
  if (parts[0] === 'patients' && parts.length === 1 && m === 'POST') {
    const b = await json(req)
    const p = await db.addPatient(text(b.name, 'name'), text(b.birthdate, 'birthdate', 10))
    await savedEverywhere(p)
    res.statusCode = 201
    return p
  }
  if (parts[0] === 'patients' && parts.length === 2) {
    const id = Number(parts[1])
    if (!Number.isInteger(id) || id <= 0) throw new HttpError(400, 'a patient id is a positive integer')
    if (m === 'GET') {
      const p = await patients.getOrLoad(id, async k => {
        const row = await db.patient(k)
        if (row === null) throw new HttpError(404, `no patient ${k}`)
        return row
      })
      return { ...p, encounters: await db.encounters(id) }
    }
    if (m === 'PUT') {
      const p = await db.updatePatient(id, text((await json(req)).name, 'name'))
      if (p === null) throw new HttpError(404, `no patient ${id}`)
      await savedEverywhere(p)
      return p
    }
  }
  if (parts[0] === 'encounters' && parts.length === 1 && m === 'POST') {
    const b = await json(req)
    const pid = Number(b.patientId)
    const type = text(b.type, 'type', 40)
    if (!Number.isInteger(pid) || await db.patient(pid) === null) throw new HttpError(404, `no patient ${String(b.patientId)}`)
    res.statusCode = 201
    return await db.addEncounter(pid, type, `http:${nodeId}`)
  }
  if (parts[0] === 'search' && m === 'GET') {
    const found = await Promise.all(index.search(url.searchParams.get('q') ?? '').map(async id => await db.patient(id)))
    return found.filter(p => p !== null)
  }
  if (parts[0] === 'hl7' && m === 'POST') {
    const message = await body(req)
    let controlId: string
    try {
      controlId = parseAdmission(message).controlId
    } catch (err) {
      if (err instanceof Hl7Error) throw new HttpError(400, err.message)
      throw err
    }
    const { duplicate } = await hl7.enqueue({ message }, { id: controlId })
    res.statusCode = 202
    return { accepted: controlId, duplicate }
  }
  if (parts[0] === 'settings' && parts.length === 2) {
    if (m === 'GET') return { key: parts[1], value: settings.get(parts[1]) ?? null }
    if (m === 'PUT') {
      await settings.set(parts[1], text((await json(req)).value, 'value', 4096))
      return { key: parts[1], value: settings.get(parts[1]) }
    }
  }
  if (parts[0] === 'config' && parts.length >= 2) {
    const path = `config/${parts.slice(1).join('/')}`
    if (m === 'GET') {
      const data = await cluster.files.get(path)
      if (data === null) throw new HttpError(404, `no ${path}`)
      res.setHeader('content-type', 'application/octet-stream')
      res.end(data)
      return undefined
    }
    if (m === 'PUT') return { path, version: String(await cluster.files.put(path, await body(req))) }
  }
  if (parts[0] === 'tasks' && parts.length === 2 && m === 'GET') return await db.taskRuns(parts[1])
  throw new HttpError(404, `no route ${m} ${url.pathname}`)
}

const server = createServer((req, res) => {
  const path = req.url ?? '/'
  if (path.startsWith('/cluster') || path.startsWith('/health')) {
    clusterHttp(req, res)
    return
  }
  if (!serving) {
    res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'this node is not part of a majority' }))
    return
  }
  route(req, res).then(v => {
    if (v === undefined) return
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(v))
  }, (err: unknown) => {
    const status = err instanceof HttpError ? err.status : 500
    if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: (err as Error).message, name: (err as Error).name }))
  })
})
server.listen(Number(args['http-port']), args.host, () => {
  console.log(JSON.stringify({ event: 'listening', node: nodeId, http: `http://${args.host}:${args['http-port']}`, mesh: cluster.addresses, database: db.kind }))
})

let stopping: Promise<void> | null = null
async function shutdown (code: number): Promise<void> {
  stopping ??= (async () => {
    serving = false
    mirror.stop()
    await importer.stop()
    await cluster.stop()
    server.close()
    server.closeAllConnections()
    await db.close()
    process.exit(code)
  })()
  await stopping
}
process.on('SIGTERM', () => { void shutdown(0) })
process.on('SIGINT', () => { void shutdown(0) })
parentGone = () => { void shutdown(0) }
