/**
 * Fills the tests' transpile cache (hooks.mjs) before tap starts the test
 * files. A test process that meets a file not yet cached loads the
 * TypeScript compiler first (1–2 s here, more under coverage), and in a
 * fresh clone, as CI runs, every test file is such a file the first time.
 * Here that is paid once. (Two worker threads were no faster.)
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { compiled, root } from './hooks.mjs'

const SKIPPED = new Set(['node_modules', 'dist'])

async function * typeScriptFiles (dir) {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') || SKIPPED.has(e.name)) continue
    const path = join(dir, e.name)
    if (e.isDirectory()) yield * typeScriptFiles(path)
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) yield path
  }
}

const started = performance.now()
let files = 0
for await (const path of typeScriptFiles(root)) {
  await compiled(path)
  files++
}
process.stderr.write(`test/loader/warm.mjs: ${files} TypeScript files ready in ${Math.round(performance.now() - started)} ms\n`)
