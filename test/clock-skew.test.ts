/**
 * The fault bench's skewed clocks (testkit/clock-skew.ts) in a child
 * process: clocks and timers run at the set rate, process.hrtime (the
 * history's time line) does not, and a bad rate is refused. Timers are
 * compared by the order in which they fire against an unpatched timer
 * from node:timers, never against a wall-clock threshold.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { CLOCK_RATE_ENV, parseClockRate } from '../testkit/clock-skew.js'
import { TS_IMPORT } from '../testkit/ts-import.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SHIM = fileURLToPath(new URL('../testkit/clock-skew-preload.ts', import.meta.url))

const PROBE = `
import { setTimeout as realTimeout } from 'node:timers'
const hr = () => Number(process.hrtime.bigint()) / 1e6
const order = []
const p0 = performance.now(), d0 = Date.now(), h0 = hr()
const done = () => {
  const ph = (performance.now() - p0) / (hr() - h0)
  const dh = (Date.now() - d0) / (hr() - h0)
  console.log(JSON.stringify({ order, ph, dh, aborted: signal.aborted }))
}
const signal = AbortSignal.timeout(Number(process.argv[1]))
setTimeout(() => { order.push('skewed timeout') }, Number(process.argv[1]))
let beats = 0
const iv = setInterval(() => { if (++beats === 2) { order.push('skewed interval x2'); clearInterval(iv) } }, Number(process.argv[1]) / 4)
realTimeout(() => { order.push('real timeout'); setImmediate(done) }, Number(process.argv[2]))
`

function probe (rate: string, skewedMs: number, realMs: number): { status: number | null, stderr: string, out: { order: string[], ph: number, dh: number, aborted: boolean } | null } {
  const r = spawnSync(process.execPath, [...TS_IMPORT, '--import', SHIM, '--input-type=module', '-e', PROBE, String(skewedMs), String(realMs)], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, [CLOCK_RATE_ENV]: rate, _TAPJS_PROCESSINFO_COVERAGE_: '0' }, timeout: 30_000
  })
  return { status: r.status, stderr: r.stderr, out: r.status === 0 ? JSON.parse(r.stdout.trim().split('\n').pop() as string) : null }
}

t.test('a fast clock: 3x, so its 1,000 ms timers fire before a real 600 ms one', async t => {
  // 1000 / 3 is no whole number: AbortSignal.timeout refuses fractions.
  const r = probe('3', 1000, 600)
  t.equal(r.status, 0, r.stderr)
  t.same(r.out?.order, ['skewed interval x2', 'skewed timeout', 'real timeout'])
  t.equal(r.out?.aborted, true, 'AbortSignal.timeout is skewed too')
  t.ok(Math.abs((r.out?.ph ?? 0) - 3) < 0.05, `performance.now runs 3x process.hrtime (${r.out?.ph})`)
  t.ok(Math.abs((r.out?.dh ?? 0) - 3) < 0.05, `Date.now runs 3x process.hrtime (${r.out?.dh})`)
})

t.test('a slow clock: 0.5x, so its 300 ms timers fire after a real 400 ms one', async t => {
  const r = probe('0.5', 300, 400)
  t.equal(r.status, 0, r.stderr)
  t.same(r.out?.order, ['skewed interval x2', 'real timeout'], 'the skewed 300 ms timeout had not fired (the probe ends at the real timer)')
  t.equal(r.out?.aborted, false)
  t.ok(Math.abs((r.out?.ph ?? 0) - 0.5) < 0.05, `performance.now runs at half speed (${r.out?.ph})`)
})

t.test('no rate, or 1, patches nothing; a bad rate is refused at start', async t => {
  t.equal(parseClockRate(undefined), 1)
  t.equal(parseClockRate('1.05'), 1.05)
  for (const bad of ['fast', '0', '-1', '100', 'NaN']) t.throws(() => parseClockRate(bad), new RegExp(CLOCK_RATE_ENV), bad)
  const r = probe('1', 300, 400)
  t.same(r.out?.order, ['skewed interval x2', 'skewed timeout', 'real timeout'])
  t.ok(Math.abs((r.out?.ph ?? 0) - 1) < 0.05, 'performance.now is real time')
  const bad = probe('sideways', 300, 400)
  t.not(bad.status, 0, 'a bad rate stops the process')
  t.match(bad.stderr, /RAFTMESH_TEST_CLOCK_RATE must be a number/)
})
