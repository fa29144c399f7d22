/**
 * `npm run sim -- [--seeds N] [--seed S] [--json]`: runs N seeds starting at
 * S and prints a summary (one line, or JSON with --json); each failing seed
 * is printed with the command that replays it. Exit code 0 only when no seed
 * failed.
 */
import { parseArgs } from 'node:util'
import { replayCommand, runSeeds } from './run-seeds.js'

function count (name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got ${raw}`)
    process.exit(2)
  }
  return n
}

let values
try {
  ({ values } = parseArgs({
    options: {
      seeds: { type: 'string' },
      seed: { type: 'string' },
      'fault-ms': { type: 'string' },
      'max-events': { type: 'string' },
      json: { type: 'boolean' },
      'fail-fast': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    }
  }))
} catch (err) {
  console.error((err as Error).message)
  process.exit(2)
}
if (values.help === true) {
  console.log(`usage: npm run sim -- [--seeds N] [--seed S] [--fault-ms T] [--max-events E] [--json]
  --seeds N       number of seeds to run (default 1 with --seed, else 100)
  --seed S        first seed (default 1)
  --fault-ms T    simulated milliseconds of faults per seed (default 3000)
  --max-events E  simulated events allowed per seed (default 400000)
  --json          print the summary as JSON
  --fail-fast     stop at the first failing seed`)
  process.exit(0)
}
const first = count('seed', values.seed, 1)
const seeds = count('seeds', values.seeds, values.seed !== undefined ? 1 : 100)
const faultMs = values['fault-ms'] === undefined ? undefined : count('fault-ms', values['fault-ms'], 3000)
const maxEvents = values['max-events'] === undefined ? undefined : count('max-events', values['max-events'], 400000)
const json = values.json === true
const extra = (faultMs === undefined ? '' : ` --fault-ms ${faultMs}`) + (maxEvents === undefined ? '' : ` --max-events ${maxEvents}`)

const summary = await runSeeds(first, seeds, { faultMs, maxEvents, failFast: values['fail-fast'] === true }, v => {
  const out = json ? console.error : console.log
  out(`seed ${v.seed} FAILED:`)
  for (const msg of v.violations) out(`  ${msg}`)
  out(`  replay: ${replayCommand(v.seed)}${extra}`)
}, done => {
  if (done % 100 === 0) process.stderr.write(`sim: ${done}/${seeds} seeds\n`)
})
if (json) {
  console.log(JSON.stringify(summary))
} else {
  const { failedSeeds, ...figures } = summary
  console.log(Object.entries(figures).map(([k, v]) => `${k}=${v}`).join(' ') + (failedSeeds.length > 0 ? ` failed=${failedSeeds.join(',')}` : ''))
}
process.exit(summary.violations === 0 ? 0 : 1)
