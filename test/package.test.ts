/**
 * The published package works for a user: `npm pack` holds the built code,
 * README and LICENSE and nothing else; installed into a project of its own,
 * plain node (no TypeScript loader) imports it as `raftmesh`, and tsc
 * type-checks a consumer file against its declarations.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import * as source from '../lib/index.js'
import { exec, installInto, pack, ROOT, type Packed } from './helpers/packed-package.js'

/**
 * What the package must export at least (add to it as the API grows). The
 * package must also export exactly what lib/index.ts does, so a new export
 * is checked as soon as lib/index.ts has it.
 */
const REQUIRED = [
  'Cluster',
  'ClusterMismatchError', 'ClusterStoppedError', 'CorruptLogError', 'HandshakeError', 'InvalidArgumentError',
  'LeadershipLostError', 'LockLostError', 'LockTimeoutError', 'NodeIdConflictError', 'NotLeaderError',
  'PeerKeyError', 'QuorumLostError', 'SessionLostError', 'TimeoutError', 'VersionMismatchError'
]

/**
 * Run by plain node in the consumer project: what `import 'raftmesh'` gives.
 * Every shipped module is loaded too (by path, past `exports`), so a
 * dependency missing from package.json or code that needs a newer Node fails
 * here even before lib/index.ts reaches that module.
 */
const IMPORT_SCRIPT = `
import { readdir } from 'node:fs/promises'
import * as pkg from 'raftmesh'
const dist = new URL('node_modules/raftmesh/dist/', import.meta.url)
for (const file of await readdir(dist, { recursive: true })) {
  if (file.endsWith('.js')) await import(new URL(file, dist).href)
}
const exports = Object.entries(pkg).map(([key, value]) => {
  const error = typeof value === 'function' && value.prototype instanceof Error ? new value() : null
  return { key, name: error?.name, code: error?.code }
})
const deep = await import('raftmesh/dist/lib/errors.js').then(() => 'imported', err => err.code)
console.log(JSON.stringify({ exports, deep }))
`

/** A consumer's file: every export by name, typed (not any), and nothing but the root importable. */
function consumerSource (names: readonly string[]): string {
  return `import { ${names.join(', ')} } from 'raftmesh'
// @ts-expect-error only the package root is exported
import type {} from 'raftmesh/dist/lib/errors.js'

export const exported: unknown[] = [${names.join(', ')}]
export const code: 'ERR_CLUSTER_STOPPED' = new ClusterStoppedError().code
// @ts-expect-error the declarations carry real types, so a code is not a number
export const notANumber: number = new ClusterStoppedError().code
`
}

const CONSUMER_TSCONFIG = {
  compilerOptions: {
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    target: 'ES2022',
    strict: true,
    noEmit: true,
    // tsc's default: the package's declarations (and its dependencies') are checked too.
    skipLibCheck: false,
    // A server that embeds raftmesh has @types/node; the consumer borrows ours.
    typeRoots: [join(ROOT, 'node_modules/@types')],
    types: ['node']
  },
  files: ['consumer.ts'],
  // Every shipped declaration, not only those lib/index.ts reaches today.
  include: ['node_modules/raftmesh/dist/**/*.d.ts'],
  exclude: []
}

// Outside the repository, so that nothing resolves from its node_modules.
const dir = await mkdtemp(join(tmpdir(), 'raftmesh-package-'))
const app = join(dir, 'app')
t.teardown(() => rm(dir, { recursive: true, force: true }))

let packed: Packed
t.before(async () => {
  packed = await pack(dir)
  await mkdir(app)
  await installInto(app, packed)
})

t.test('the tarball holds dist/, README, LICENSE and package.json, and no sources, tests, benches or examples', async t => {
  const { files } = packed
  t.comment(`${files.length} files, ${Math.round(packed.size / 1024)} kB packed`)
  for (const f of ['package.json', 'README.md', 'LICENSE', 'dist/lib/index.js', 'dist/lib/index.d.ts']) {
    t.ok(files.includes(f), `${f} is packed`)
  }
  const notShipped = (f: string): boolean =>
    !['package.json', 'README.md', 'LICENSE'].includes(f) && !f.startsWith('dist/')
  t.same(files.filter(notShipped), [], 'only dist/ besides the manifest, README and LICENSE')
  t.same(files.filter(f => /(^|\/)(test|bench|examples|testkit|sim)\//.test(f)), [],
    'no tests, benches, examples, testkit or simulator')
  t.same(files.filter(f => /\.[cm]?ts$/.test(f) && !/\.d\.[cm]?ts$/.test(f)), [], 'no TypeScript sources')
})

t.test('plain node loads every shipped module, imports what lib/index.ts exports from raftmesh, and nothing deeper', async t => {
  await writeFile(join(app, 'import.mjs'), IMPORT_SCRIPT)
  const { exports, deep } = JSON.parse(await exec(process.execPath, ['import.mjs'], app)) as {
    exports: Array<{ key: string, name?: string, code?: string }>
    deep: string
  }
  const names = exports.map(e => e.key).sort()
  t.same(names, Object.keys(source).sort(), 'the same names as lib/index.ts')
  t.same(REQUIRED.filter(n => !names.includes(n)), [], 'every required name')
  for (const e of exports.filter(e => e.name !== undefined)) {
    t.equal(e.name, e.key, `${e.key}'s name is its export name`)
    t.match(e.code, /^ERR_[A-Z_]+$/, `${e.key} has a stable code`)
  }
  t.equal(deep, 'ERR_PACKAGE_PATH_NOT_EXPORTED', 'files inside the package are not importable')
})

t.test('tsc type-checks a consumer against the declarations (moduleResolution NodeNext)', async t => {
  await writeFile(join(app, 'consumer.ts'), consumerSource(Object.keys(source)))
  await writeFile(join(app, 'tsconfig.json'), JSON.stringify(CONSUMER_TSCONFIG))
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc')
  const output = await exec(process.execPath, [tsc, '-p', app], app).catch((err: { stdout?: string }) => {
    throw new Error(`tsc failed:\n${err.stdout ?? String(err)}`)
  })
  t.equal(output, '', 'no errors')
})
