/**
 * machineNow() is the one time line the process histories are ordered on
 * (the fault bench's checkers compare a kill or a pause the parent recorded
 * with grants its children recorded, and grants of different children with
 * each other). It must not depend on the wall clock at each process's start:
 * `performance.timeOrigin + performance.now()` did, so a wall-clock step
 * between two starts (an NTP step, a VM resumed and resynced) shifted every
 * event of the later process. One such batch of `npm run bench -- faults`
 * (seeds 1001-1004, 2026-12-04 21:01) had its harness ~9 s behind its
 * children and each restarted child 40-120 ms off its peers, and reported
 * 600+ lock and queue "violations" that were the clocks, not the cluster.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t from 'tap'
import { machineNow } from '../testkit/cluster-node-protocol.js'
import { TS_IMPORT } from '../testkit/ts-import.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

t.test('a process started after the wall clock stepped reads the same machine time line', t => {
  // The child sees a wall clock 9 s ahead at its start, as after a step; nothing else differs.
  const dir = mkdtempSync(join(tmpdir(), 'raftmesh-machine-now-'))
  const preload = join(dir, 'step-wall-clock.mjs')
  writeFileSync(preload, "Object.defineProperty(performance, 'timeOrigin', { value: performance.timeOrigin + 9000 })\n")
  const protocol = pathToFileURL(join(root, 'testkit', 'cluster-node-protocol.ts')).href
  const before = machineNow()
  const child = spawnSync(process.execPath, ['--import', pathToFileURL(preload).href, ...TS_IMPORT, '--input-type=module', '-e',
    `const { machineNow } = await import(${JSON.stringify(protocol)}); console.log(machineNow())`], { cwd: root, encoding: 'utf8' })
  const after = machineNow()
  t.equal(child.status, 0, child.stderr)
  const at = Number(child.stdout.trim())
  t.ok(at >= before && at <= after, `the child's reading (${at.toFixed(1)}) lies between the parent's before (${before.toFixed(1)}) and after (${after.toFixed(1)}): off by ${(at - after).toFixed(1)} ms`)
  t.end()
})

t.test('machineNow never goes back', t => {
  let last = machineNow()
  let back = 0
  for (let i = 0; i < 10_000; i++) {
    const now = machineNow()
    if (now < last) back++
    last = now
  }
  t.equal(back, 0, 'no reading below the one before it')
  t.end()
})
