/**
 * `npm run mutants [-- --json] [--jobs N] [--only NAME]`: the test of the
 * tests. Each `test/mutants/*.patch` plants one classic Raft bug in the real
 * code; this applies it to a temporary copy of the repository, runs the
 * simulation seeds that `npm test` runs (stopping at the first failure),
 * and, if no seed fails, the unit tests the patch names in an `Unit-test:`
 * header line (or every raft unit test). A mutant is caught when something
 * fails; a patch that no longer applies is a failure too, so the catalogue
 * keeps up with the code. Progress goes to stderr; the table (or
 * `{ "mutants": [{ "name", "caught", "by", "ms", "applied" }] }`) to stdout.
 * Exit code 0 only when every mutant applied and was caught.
 */
import { spawn } from 'node:child_process'
import { cp, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { parseArgs } from 'node:util'
import { TEST_SEEDS } from '../../sim/run-seeds.js'

interface Verdict {
  name: string
  caught: boolean
  /** `seed N` or a test file, or why nothing could run. */
  by: string | null
  ms: number
  applied: boolean
}

const ROOT = join(import.meta.dirname, '..', '..')
const MUTANTS = join(ROOT, 'test', 'mutants')
/** Unit tests tried when a patch names none. */
const RAFT_UNIT_TESTS = ['test/raft-core.test.ts', 'test/raft-core-state.test.ts', 'test/raft-props.test.ts', 'test/wal-recovery.test.ts', 'test/log-store.test.ts']
/** A run that takes longer than this is killed and counts as not caught. */
const RUN_TIMEOUT_MS = 10 * 60_000

const { values } = parseArgs({ options: { json: { type: 'boolean' }, jobs: { type: 'string' }, only: { type: 'string' } } })
const jobs = Math.max(1, Number(values.jobs ?? 2))

function run (cwd: string, args: string[]): Promise<{ code: number | null, stdout: string }> {
  return new Promise(resolve => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd, stdio: ['ignore', 'pipe', 'ignore'] })
    let stdout = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, RUN_TIMEOUT_MS)
    child.on('close', code => {
      clearTimeout(timer)
      resolve({ code, stdout })
    })
  })
}

function git (cwd: string, args: string[]): Promise<boolean> {
  return new Promise(resolve => {
    spawn('git', args, { cwd, stdio: 'ignore' }).on('close', code => { resolve(code === 0) })
  })
}

/** A copy of the repository's working files that patches can change, sharing node_modules. */
async function copyRepo (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-mutant-'))
  const skip = new Set(['node_modules', '.git', '.tap', 'coverage', 'dist'])
  await cp(ROOT, dir, { recursive: true, filter: src => !skip.has(basename(src)) })
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  return dir
}

/** The first failing seed in the sim's --json summary, or null when it printed none (it crashed). */
function firstFailedSeed (stdout: string): number | null {
  try {
    return (JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as { failedSeeds?: number[] }).failedSeeds?.[0] ?? null
  } catch {
    return null
  }
}

async function judge (dir: string, file: string): Promise<Verdict> {
  const name = basename(file, '.patch')
  const t0 = performance.now()
  const ms = (): number => Math.round(performance.now() - t0)
  const patch = join(MUTANTS, file)
  if (!await git(dir, ['apply', patch])) return { name, caught: false, by: 'the patch no longer applies', ms: ms(), applied: false }
  try {
    const sim = await run(dir, ['sim/cli.ts', '--seeds', String(TEST_SEEDS), '--fail-fast', '--json'])
    if (sim.code !== 0) {
      const failed = firstFailedSeed(sim.stdout)
      return { name, caught: true, by: failed === null ? `sim exited with ${String(sim.code)}` : `seed ${failed}`, ms: ms(), applied: true }
    }
    const header = (await readFile(patch, 'utf8')).split('\ndiff --git')[0]
    const named = [...header.matchAll(/^Unit-test: (\S+)$/gm)].map(m => m[1])
    for (const test of named.length > 0 ? named : RAFT_UNIT_TESTS) {
      if ((await run(dir, [test])).code !== 0) return { name, caught: true, by: test, ms: ms(), applied: true }
    }
    return { name, caught: false, by: null, ms: ms(), applied: true }
  } finally {
    await git(dir, ['apply', '-R', patch])
  }
}

const files = (await readdir(MUTANTS)).filter(f => f.endsWith('.patch') && (values.only === undefined || f === `${values.only}.patch`)).sort()
const verdicts: Verdict[] = []
let next = 0
await Promise.all(Array.from({ length: Math.min(jobs, files.length) }, async () => {
  const dir = await copyRepo()
  try {
    while (next < files.length) {
      const file = files[next++]
      process.stderr.write(`mutants: ${file} ...\n`)
      const v = await judge(dir, file)
      verdicts.push(v)
      process.stderr.write(`mutants: ${verdicts.length}/${files.length} ${v.name}: ${v.caught ? `caught by ${v.by ?? '?'}` : `NOT CAUGHT${v.by === null ? '' : ` (${v.by})`}`} in ${v.ms} ms\n`)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}))
verdicts.sort((a, b) => a.name.localeCompare(b.name))
if (values.json === true) {
  console.log(JSON.stringify({ mutants: verdicts }))
} else {
  console.log('| bug | caught by | ms |\n| --- | --- | ---: |')
  for (const v of verdicts) console.log(`| ${v.name} | ${v.caught ? v.by ?? '?' : `**not caught**${v.by === null ? '' : ` (${v.by})`}`} | ${v.ms} |`)
}
process.exit(verdicts.every(v => v.caught && v.applied) ? 0 : 1)
