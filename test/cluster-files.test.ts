/**
 * The replicated file store: on the state machine (paths, limits, versions,
 * snapshots) and on real nodes (a write seen everywhere, watchers in log
 * order, a node joining after a snapshot gets every file, a folder mirror
 * that follows puts and deletes).
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { toString } from 'uint8arrays'
import { MAX_FILE_BYTES, pathProblem } from '../lib/coordination/file-table.js'
import { Cluster, FileTooLargeError, type FileChange } from '../lib/index.js'
import { CoordinationLog } from './helpers/coordination-log.js'
import { eventually, startClusters } from './helpers/clusters.js'

t.test('paths are relative POSIX paths without . or .. segments', async t => {
  for (const good of ['config.json', 'forms/intake/v2.xml', 'a b/c-d_e.f']) t.equal(pathProblem(good), null, good)
  for (const bad of ['', '/etc/passwd', 'a/../b', '../b', 'a//b', 'a/', './a', 'a\\b', 'a\u0000b', 'x'.repeat(513)]) t.not(pathProblem(bad), null, JSON.stringify(bad).slice(0, 20))
})

t.test('on the log: put replaces with the entry index as version, delete removes, a snapshot carries the files', async t => {
  const log = new CoordinationLog()
  const a = log.client('n1/a', 'n1')
  a.open()
  const put = (path: string, s: string): unknown => a.send({ op: 'file-put', path, data: new TextEncoder().encode(s) })
  t.match(put('conf/app.json', '{}'), { ok: true, value: { version: log.index } })
  put('conf/app.json', '{"a":1}')
  put('conf/other.txt', 'x')
  t.match(put('../escape', 'x'), { ok: false, error: 'invalid' }, 'a bad path reaching the log is refused there too')
  t.same(log.sm.files.list('conf/').map(f => [f.path, toString(f.data)]), [['conf/app.json', '{"a":1}'], ['conf/other.txt', 'x']])
  t.equal(log.sm.files.totalBytes, 8)
  t.match(a.send({ op: 'file-delete', path: 'conf/other.txt' }), { ok: true, value: { existed: true } })
  t.match(a.send({ op: 'file-delete', path: 'conf/other.txt' }), { ok: true, value: { existed: false } })
  const replica = CoordinationLog.replicaOf(log)
  t.same(replica.sm.files.list(), log.sm.files.list())
  t.equal(replica.sm.files.totalBytes, 7)
})

t.test('on three nodes: a put is read everywhere, watchers see changes in log order, limits are clear errors', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const [a, b, d] = c.nodes
  const seen: FileChange[] = []
  const off = d.files.watch('forms/', ch => { seen.push(ch) })
  const v1 = await a.files.put('forms/intake.xml', '<form v="1"/>')
  const v2 = await b.files.put('forms/intake.xml', '<form v="2"/>')
  t.ok(v2 > v1, 'versions increase')
  t.equal(toString(await b.files.get('forms/intake.xml') as Uint8Array), '<form v="2"/>', 'the writer reads its write')
  await a.files.put('other/readme', 'not watched')
  t.ok(await b.files.delete('forms/intake.xml'))
  await eventually(() => seen.length === 3, 10_000, 'd to see three changes')
  t.same(seen.map(s => [s.op, s.version]), [['put', v1], ['put', v2], ['delete', seen[2].version]])
  off()
  t.match(await d.files.list(), [{ path: 'other/readme', size: 11, node: 'n1' }])
  await t.rejects(a.files.put('big', new Uint8Array(MAX_FILE_BYTES + 1)), FileTooLargeError)
  await t.rejects(a.files.put('/abs', 'x'), { name: 'InvalidArgumentError' })
})

t.test('a node joining after a snapshot gets every file, and a mirror keeps a folder equal to a prefix', async t => {
  const c = await startClusters(3, { snapshotEvery: 10 })
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-mirror-'))
  t.teardown(async () => { await c.stopAll(); await rm(dir, { recursive: true, force: true }) })
  const [a] = c.nodes
  for (let i = 0; i < 30; i++) await a.files.put(`appdata/module-${i % 5}.omod`, `build ${i}`)
  // Enough later entries that the appdata writes are only in snapshots by the time n4 joins.
  for (let i = 0; i < 30; i++) await a.files.put('noise', String(i))
  const opts = c.optionsFor(0)
  const late = await Cluster.start({ ...opts, nodeId: 'n4', dataDir: `${c.dirs[0]}-late`, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [c.addrs[0]] })
  c.nodes.push(late)
  t.ok(late.raftStatus().snapshotIndex > 0, `the late node started from a snapshot (index ${late.raftStatus().snapshotIndex})`)
  t.same((await late.files.list('appdata/')).map(f => f.path), [0, 1, 2, 3, 4].map(i => `appdata/module-${i}.omod`))
  t.equal(toString(await late.files.get('appdata/module-4.omod') as Uint8Array), 'build 29')
  const mirror = late.files.mirror('appdata/', dir)
  await mirror.ready
  t.same((await readdir(dir)).sort(), [0, 1, 2, 3, 4].map(i => `module-${i}.omod`))
  await a.files.put('appdata/module-0.omod', 'build 30')
  await a.files.delete('appdata/module-1.omod')
  const readBack = async (): Promise<string> => await readFile(join(dir, 'module-0.omod'), 'utf8').catch(() => '')
  let content = ''
  for (let i = 0; i < 200 && content !== 'build 30'; i++) {
    content = await readBack()
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  t.equal(content, 'build 30', 'a put reaches the folder')
  t.notOk((await readdir(dir)).includes('module-1.omod'), 'a delete removes the file')
  t.notOk((await readdir(dir)).some(f => f.endsWith('.tmp')), 'no temporary file is left')
  mirror.stop()
})
