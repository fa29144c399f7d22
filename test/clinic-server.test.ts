/**
 * The example clinic server as its users would run it: three processes
 * sharing one database (a SQLite file, then PostgreSQL), each embedding a Cluster. A patient written on
 * one node is served fresh by the others (invalidation cache), found by
 * their search (events), HL7 admissions sent to any node are imported once
 * (queue), the purge task runs once per tick (scheduler), configuration
 * written anywhere is mirrored to every node's folder (files), settings are
 * replicated, admissions for one new patient sent to two nodes at once make
 * one patient (a cluster lock per patient identifier), and a SIGKILLed
 * node's work goes on elsewhere.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { freePort } from '../testkit/local-cluster.js'
import { postgresBin, startPostgres } from './helpers/postgres.js'
import { TS_IMPORT } from '../testkit/ts-import.js'

const SERVER = fileURLToPath(new URL('../examples/clinic-server/server.ts', import.meta.url))
const SECRET = 'a clinic secret of at least thirty-two bytes'

interface Node { id: string, http: string, proc: ChildProcess, dir: string }

async function until (what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

async function call (node: Node, method: string, path: string, body?: unknown): Promise<{ status: number, body: any }> {
  const res = await fetch(`${node.http}${path}`, {
    method,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000)
  })
  const text = await res.text()
  let parsed: unknown = text
  try { parsed = JSON.parse(text) } catch {}
  return { status: res.status, body: parsed }
}

const hl7 = (controlId: string, family: string, given: string, birth: string, identifier = controlId): string =>
  [`MSH|^~\\&|LAB|CLINIC|OPENMRS|CLINIC|20261204120000||ADT^A01|${controlId}|P|2.5`, `PID|1||${identifier}||${family}^${given}||${birth}|F`].join('\r')

/** Where the nodes' shared database is: their extra arguments and environment. */
interface Database { args: string[], env: Record<string, string> }

async function scenario (t: Test, database: (root: string) => Database): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'raftmesh-clinic-'))
  const db = database(root)
  const meshPorts = [await freePort(), await freePort(), await freePort()]
  const nodes: Node[] = []
  t.teardown(async () => {
    for (const n of nodes) if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL')
    await rm(root, { recursive: true, force: true })
  })
  for (let i = 0; i < 3; i++) {
    const id = `n${i + 1}`
    const httpPort = await freePort()
    const dir = join(root, id)
    const proc = spawn(process.execPath, [...TS_IMPORT, SERVER, '--node-id', id, '--data-dir', dir, ...db.args,
      '--http-port', String(httpPort), '--mesh-port', String(meshPorts[i]), '--expect', '3', '--purge-every', '500',
      ...(i === 0 ? [] : ['--bootstrap', `/ip4/127.0.0.1/tcp/${meshPorts[0]}`])], { env: { ...process.env, ...db.env, CLUSTER_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'inherit'] })
    nodes.push({ id, http: `http://127.0.0.1:${httpPort}`, proc, dir })
  }
  await Promise.all(nodes.map(async n => {
    for await (const line of createInterface({ input: n.proc.stdout as NodeJS.ReadableStream })) if (line.includes('"listening"')) return
  }))
  await until('every node ready', async () => (await Promise.all(nodes.map(async n => (await call(n, 'GET', '/health/ready')).status))).every(s => s === 200))
  const [a, b, c] = nodes

  const created = await call(a, 'POST', '/patients', { name: 'Amina Otieno', birthdate: '1990-04-02' })
  t.equal(created.status, 201)
  const id = created.body.id as number
  t.equal((await call(b, 'GET', `/patients/${id}`)).body.name, 'Amina Otieno', 'another node loads the patient (and caches it)')
  t.equal((await call(c, 'PUT', `/patients/${id}`, { name: 'Amina W. Otieno' })).status, 200)
  await until('b to serve the new name', async () => (await call(b, 'GET', `/patients/${id}`)).body.name === 'Amina W. Otieno', 10_000)
  t.pass('an update on a third node invalidated b\'s cached copy')
  await until('b\'s search index to follow', async () => (await call(b, 'GET', '/search?q=otieno')).body.length === 1, 10_000)
  t.same((await call(b, 'GET', '/search?q=amina%20w.')).body.map((p: { id: number }) => p.id), [id], 'search on another node finds the renamed patient')

  t.equal((await call(a, 'POST', '/hl7', hl7('MSG0001', 'Kamau', 'Joseph', '19751130'))).status, 202)
  // Sent again to another node: one item while the first is queued, or (once it was imported and acked) a second
  // item that the import recognises by its control id. Either way the admission is imported once.
  t.equal((await call(b, 'POST', '/hl7', hl7('MSG0001', 'Kamau', 'Joseph', '19751130'))).status, 202)
  t.equal((await call(c, 'POST', '/hl7', 'not hl7')).status, 400, 'a malformed message is refused at the door')
  await until('the admission imported', async () => (await call(c, 'GET', '/search?q=kamau')).body.length === 1, 15_000)
  await until('the queue drained', async () => (await call(a, 'GET', '/cluster/status')).body.queues.every((q: { depth: number, inFlight: number }) => q.depth === 0 && q.inFlight === 0), 15_000)
  const found = (await call(c, 'GET', '/search?q=kamau')).body as Array<{ id: number }>
  t.equal(found.length, 1, 'the message sent twice made one patient')
  t.match((await call(a, 'GET', `/patients/${found[0].id}`)).body.encounters, [{ type: 'ADMISSION', source: 'hl7:MSG0001' }], 'with one admission encounter')

  // Two admissions of one new patient (two control ids, one identifier) sent to two nodes at once, for four patients.
  const families = ['Achieng', 'Barasa', 'Chebet', 'Mutua']
  const sent = await Promise.all(families.flatMap((f, i) => [
    call(nodes[i % 3], 'POST', '/hl7', hl7(`ADM-${f}-1`, f, 'Mary', '19800101', `PAT-${f}`)),
    call(nodes[(i + 1) % 3], 'POST', '/hl7', hl7(`ADM-${f}-2`, f, 'Mary', '19800101', `PAT-${f}`))
  ]))
  t.ok(sent.every(r => r.status === 202), 'all eight admissions accepted')
  await until('the admissions imported', async () => (await Promise.all(families.map(async f => (await call(a, 'GET', `/search?q=${f}`)).body.length))).every(n => n >= 1), 15_000)
  await until('the queue drained', async () => (await call(a, 'GET', '/cluster/status')).body.queues.every((q: { depth: number, inFlight: number }) => q.depth === 0 && q.inFlight === 0), 15_000)
  for (const f of families) {
    const ps = (await call(b, 'GET', `/search?q=${f}`)).body as Array<{ id: number }>
    t.equal(ps.length, 1, `${f}: one patient for two admissions`)
    t.equal((await call(b, 'GET', `/patients/${ps[0].id}`)).body.encounters.length, 2, `${f}: with both admission encounters`)
  }

  t.equal((await call(b, 'PUT', '/settings/locale', { value: 'sw_KE' })).status, 200)
  await until('the setting everywhere', async () => (await Promise.all(nodes.map(async n => (await call(n, 'GET', '/settings/locale')).body.value))).every(v => v === 'sw_KE'), 10_000)
  t.pass('a global setting written on one node is read on all')

  t.equal((await call(c, 'PUT', '/config/forms/intake.xml', '<form version="2"/>')).status, 200)
  t.equal((await call(c, 'GET', '/config/forms/intake.xml')).body, '<form version="2"/>', 'the writer reads its write')
  // Reads are from each node's applied state: another node sees the file once it applies the put.
  await until('a to read the file', async () => (await call(a, 'GET', '/config/forms/intake.xml')).body === '<form version="2"/>', 10_000)
  await until('the mirror on every node', async () => (await Promise.all(nodes.map(async n => await readFile(join(n.dir, 'config', 'forms', 'intake.xml'), 'utf8').catch(() => '')))).every(x => x === '<form version="2"/>'), 10_000)
  t.pass('configuration is mirrored to every node\'s folder')

  await until('purge ticks', async () => (await call(a, 'GET', '/tasks/purge-old-encounters')).body.length >= 4, 15_000)
  const runs = (await call(a, 'GET', '/tasks/purge-old-encounters')).body as Array<{ fence: string, scheduledAt: number }>
  t.equal(new Set(runs.map(r => r.scheduledAt)).size, runs.length, `each of ${runs.length} purge ticks ran once`)

  const status = (await call(b, 'GET', '/cluster/status')).body
  const leader = nodes.find(n => n.id === status.raft.leader) as Node
  leader.proc.kill('SIGKILL')
  await once(leader.proc, 'exit')
  const rest = nodes.filter(n => n !== leader)
  await until('a new leader', async () => {
    const s = (await call(rest[0], 'GET', '/cluster/status')).body
    return s.raft.leader !== null && s.raft.leader !== leader.id
  }, 20_000)
  t.equal((await call(rest[0], 'POST', '/hl7', hl7('MSG0002', 'Njeri', 'Grace', '20010515'))).status, 202, 'admissions are accepted after the leader\'s death')
  await until('the second admission imported', async () => (await call(rest[1], 'GET', '/search?q=njeri')).body.length === 1, 20_000)
  t.pass('and imported by a surviving node')
  for (const n of rest) n.proc.kill('SIGTERM')
  await Promise.all(rest.map(async n => { if (n.proc.exitCode === null) await once(n.proc, 'exit') }))
}

t.test('three clinic servers share one SQLite file and every cluster service', async t => {
  await scenario(t, root => ({ args: ['--db', join(root, 'clinic.db')], env: {} }))
})

const pgBin = postgresBin()
t.test('three clinic servers share one PostgreSQL database and every cluster service', {
  skip: pgBin === null ? 'PostgreSQL is not installed (apt-get install postgresql): the clinic server on PostgreSQL is untested here' : false
}, async t => {
  const pg = await startPostgres(pgBin as string)
  // A fast shutdown disconnects any node still connected, whichever teardown runs first.
  t.teardown(pg.stop)
  await scenario(t, () => ({ args: [], env: { DATABASE_URL: pg.url } }))
})
