/**
 * `npm run sim -- --seeds N [--seed S] [--steps K]`: runs N seeds starting
 * at S (default 1), each with K ticks of faults (default 300), and ends with
 * one line `seeds=N violations=V ...`. Exit code 0 only when V is 0.
 */
import { parseArgs } from 'node:util'
import { runSeeds } from './run-seeds.js'

function positive (name: string, raw: string | undefined, fallback: number): number {
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
      steps: { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  }))
} catch (err) {
  console.error((err as Error).message)
  process.exit(2)
}
if (values.help === true) {
  console.log('usage: npm run sim -- [--seeds N] [--seed S] [--steps K]\n  --seeds N  number of seeds to run (default 1 with --seed, else 100)\n  --seed S   first seed (default 1)\n  --steps K  ticks of faults per seed (default 300)')
  process.exit(0)
}
const first = positive('seed', values.seed, 1)
const count = positive('seeds', values.seeds, values.seed !== undefined ? 1 : 100)
const steps = values.steps === undefined ? undefined : positive('steps', values.steps, 300)

const summary = runSeeds(first, count, steps, v => {
  console.log(`seed ${v.seed} FAILED:`)
  for (const msg of v.violations) console.log(`  ${msg}`)
  console.log(`  replay: npm run sim -- --seed ${v.seed}${steps === undefined ? '' : ` --steps ${steps}`}`)
})
const { failedSeeds, ...figures } = summary
console.log(Object.entries(figures).map(([k, v]) => `${k}=${v}`).join(' ') + (failedSeeds.length > 0 ? ` failed=${failedSeeds.join(',')}` : ''))
process.exit(summary.violations === 0 ? 0 : 1)
