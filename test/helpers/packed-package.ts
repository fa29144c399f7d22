/**
 * The package as a user gets it: `npm pack` of this repository, installed
 * into a fresh project outside it, from the npm cache only.
 *
 * Installing a tarball with `npm install --offline` would need the registry
 * metadata of every dependency to resolve their ranges, and `npm ci` does not
 * cache that metadata. So the project gets a lockfile instead: this
 * repository's own entries minus its devDependencies' (the tree that `npm ci`
 * just fetched, so every tarball is in the cache), plus the packed tarball,
 * and `npm ci --offline` installs that. A dependency the shipped code needs
 * but package.json lists as a devDependency is then missing, as it would be
 * for a user.
 */
import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

const run = promisify(execFile)

/**
 * The environment of child processes: without tap's loaders, which
 * NODE_OPTIONS would carry into them, so `node` is plain node.
 */
export function plainEnv (): NodeJS.ProcessEnv {
  const { NODE_OPTIONS, NODE_V8_COVERAGE, ...env } = process.env
  return env
}

export async function exec (cmd: string, args: string[], cwd: string): Promise<string> {
  const { stdout } = await run(cmd, args, { cwd, env: plainEnv(), maxBuffer: 16 << 20 })
  return stdout
}

export interface Packed {
  readonly tarball: string
  readonly integrity: string
  readonly size: number
  readonly files: readonly string[]
}

/** `npm pack` (which builds first, as `prepack` says) into `dir`. */
export async function pack (dir: string): Promise<Packed> {
  const [info] = JSON.parse(await exec('npm', ['pack', '--json', '--pack-destination', dir], ROOT)) as Array<{
    filename: string, integrity: string, size: number, files: Array<{ path: string }>
  }>
  return { tarball: join(dir, info.filename), integrity: info.integrity, size: info.size, files: info.files.map(f => f.path) }
}

interface LockEntry { readonly dev?: boolean }

/** A project in `dir` that depends on the packed tarball, installed from the npm cache. */
export async function installInto (dir: string, packed: Packed): Promise<void> {
  const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>
  const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> }
  const dependencies = { raftmesh: `file:${packed.tarball}` }
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', dependencies },
    'node_modules/raftmesh': {
      version: manifest.version,
      resolved: dependencies.raftmesh,
      integrity: packed.integrity,
      dependencies: manifest.dependencies,
      engines: manifest.engines
    }
  }
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path !== '' && entry.dev !== true) packages[path] = entry
  }
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies }))
  await writeFile(join(dir, 'package-lock.json'), JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }))
  // No install scripts: they only cost time here; msgpackr loads its prebuilt
  // native extension without them (or falls back to JavaScript).
  await exec('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], dir)
}
