/**
 * ESM hooks that run the tests' TypeScript: TypeScript's own transpileModule
 * (as ts-node does, so coverage maps back to the sources exactly), with the
 * output cached on disk by content. ts-node transpiles every file again in
 * every test process, about 2.5 s for a test that loads lib/; tsx is fast but
 * its source maps make coverage report 100% everywhere
 * (privatenumber/tsx#433, #558). Types are checked by `npm run typecheck`.
 * `npm test` fills the cache first (warm.mjs).
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const cacheDir = join(root, 'node_modules', '.cache', 'raftmesh-test-ts')
let ts = null
// A new TypeScript, Node or version of this file starts a new cache.
const salt = createHash('sha256')
  .update(process.versions.node)
  .update(readFileSync(join(root, 'node_modules', 'typescript', 'package.json')))
  .update(readFileSync(fileURLToPath(import.meta.url)))
  .digest('hex')

const transpile = async (path, source) => {
  ts ??= (await import('typescript')).default
  const out = ts.transpileModule(source, {
    fileName: path,
    reportDiagnostics: false,
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022, esModuleInterop: true, sourceMap: true, inlineSources: true, inlineSourceMap: false }
  })
  const map = JSON.parse(out.sourceMapText)
  map.file = path
  map.sources = [path]
  delete map.sourceRoot
  const code = out.outputText.replace(/\/\/# sourceMappingURL=\S+\s*$/, '')
  return `${code}//# sourceMappingURL=data:application/json;charset=utf-8;base64,${Buffer.from(JSON.stringify(map)).toString('base64')}`
}

/** TypeScript sources import each other as `./x.js`. */
export async function resolve (specifier, context, next) {
  try {
    return await next(specifier, context)
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !specifier.endsWith('.js') || !/^(\.|\/|file:)/.test(specifier)) throw err
    return await next(`${specifier.slice(0, -3)}.ts`, context)
  }
}

/** The JavaScript for a TypeScript file: from the cache, or transpiled into it. */
export async function compiled (path) {
  const source = await readFile(path, 'utf8')
  const key = createHash('sha256').update(`${salt}\0${path}\0`).update(source).digest('hex')
  const cached = join(cacheDir, `${key}.js`)
  try {
    return await readFile(cached, 'utf8')
  } catch {
    const code = await transpile(path, source)
    await mkdir(cacheDir, { recursive: true })
    // Other test processes may read it at any time: write aside, then rename.
    const tmp = `${cached}.${process.pid}.tmp`
    await writeFile(tmp, code)
    await rename(tmp, cached)
    return code
  }
}

export async function load (url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts') || url.includes('/node_modules/')) return await next(url, context)
  return { format: 'module', source: await compiled(fileURLToPath(url)), shortCircuit: true }
}
