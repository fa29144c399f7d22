/**
 * `npm start` as a newcomer runs it: three clinic servers, the workload and
 * the scheduled faults for --duration seconds, or until Ctrl-C; either way
 * it ends with a summary whose safety checks passed, a failover time after
 * a leader kill, and no server process left behind.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { TS_IMPORT } from '../testkit/ts-import.js'

const DEMO = fileURLToPath(new URL('../examples/cluster-demo.ts', import.meta.url))

/** PIDs of the processes whose command line names `dir` (the run's directory, in every server's arguments). */
function processesUsing (dir: string): number[] {
  return readdirSync('/proc').filter(p => /^\d+$/.test(p)).filter(p => {
    try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir) } catch { return false }
  }).map(Number)
}

async function runDemo (args: string[], interruptWhenReady: boolean): Promise<{ code: number | null, out: string[], dir: string }> {
  const proc = spawn(process.execPath, [...TS_IMPORT, DEMO, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const out: string[] = []
  let dir = ''
  createInterface({ input: proc.stdout }).on('line', line => {
    out.push(line)
    dir ||= /SQLite (\S+)\/clinic\.db/.exec(line)?.[1] ?? ''
    if (interruptWhenReady && line.includes('servers ready')) proc.kill('SIGINT')
  })
  const [code] = await once(proc, 'exit') as [number | null]
  return { code, out, dir }
}

t.test('--duration: faults, a failover, the safety checks, and no process left', async t => {
  const { code, out, dir } = await runDemo(['--nodes', '3', '--duration', '14'], false)
  t.equal(code, 0, out.join('\n'))
  t.not(dir, '', 'the run named its database')
  t.ok(out.some(l => /^ {2}failover +\d+ ms from leader SIGKILL/.test(l)), 'the summary reports a failover time')
  t.ok(out.some(l => /^ {2}safety +each accepted HL7 message imported exactly once/.test(l)), 'the safety checks passed')
  t.ok(out.some(l => /^ {2}hl7 +[1-9]\d* accepted/.test(l)), 'HL7 messages were accepted')
  const header = out.findIndex(l => l.startsWith('node ') && l.includes('cache out/in') && l.includes('events out/in'))
  t.ok(header >= 0, 'the final table has each node\'s cache and event traffic')
  const traffic = out.slice(header + 1, header + 4).map(l => /(\d+)\/(\d+) +(\d+)\/(\d+) +\S+$/.exec(l))
  t.ok(traffic.some(m => m !== null && Number(m[2]) > 0 && Number(m[4]) > 0), `a node took in cache updates and events from the others: ${out.slice(header, header + 4).join(' | ')}`)
  t.same(processesUsing(dir), [], 'no server outlived npm start')
})

t.test('Ctrl-C: the run ends with its summary and no process left', async t => {
  const { code, out, dir } = await runDemo(['--nodes', '3'], true)
  t.equal(code, 0, out.join('\n'))
  t.ok(out.includes('summary'), 'a summary was printed')
  t.ok(out.some(l => /^ {2}safety +each accepted HL7 message imported exactly once/.test(l)), 'the safety checks passed')
  t.same(processesUsing(dir), [], 'no server outlived npm start')
})
