/**
 * The scheduler on three real nodes in this process: every node registers
 * the same task and each tick runs on exactly one of them, with increasing
 * fences and never two runs at once; slow runs make ticks skip; differing
 * definitions are reported and not run; a node that stops hands the task
 * to the others.
 */
import t from 'tap'
import { eventually, startClusters } from './helpers/clusters.js'

interface Run { node: string, fence: bigint, scheduledAt: number, start: number, end: number }

t.test('a 200 ms task runs once per tick across three nodes, fences increasing, never two at once', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const runs: Run[] = []
  const tasks = c.nodes.map(n => n.schedule('heartbeat-report', { every: '200ms' }, async ({ fence, scheduledAt }) => {
    const start = performance.now()
    await new Promise(resolve => setTimeout(resolve, 20))
    runs.push({ node: n.id, fence, scheduledAt, start, end: performance.now() })
  }))
  await eventually(() => runs.length >= 12, 20_000, 'a dozen runs')
  await Promise.all(tasks.map(async task => { await task.stop() }))
  const sorted = [...runs].sort((a, b) => a.start - b.start)
  for (let i = 1; i < sorted.length; i++) {
    const [p, q] = [sorted[i - 1], sorted[i]]
    if (!(q.fence > p.fence && q.scheduledAt > p.scheduledAt && q.start >= p.end)) t.fail(`run ${i} (${q.node} fence ${q.fence} tick ${q.scheduledAt}) after ${p.node} fence ${p.fence} tick ${p.scheduledAt}`)
  }
  t.pass(`${sorted.length} runs: each tick once, fences and ticks increasing, no overlap`)
  t.ok(sorted.every(r => r.scheduledAt % 200 === 0), 'ticks fall on the interval\'s slots')
  t.ok(new Set(runs.map(r => r.node)).size >= 2, `runs were spread over nodes (${[...new Set(runs.map(r => r.node))].join(', ')})`)
  const s = c.nodes[0].status().schedules.find(x => x.task === 'heartbeat-report')
  t.ok(s !== undefined && s.runs >= 12 && s.lastRun !== null, 'status reports the task\'s runs')
  t.match(await c.nodes[0].metrics.metrics(), /raftmesh_task_runs\{[^}]*task="heartbeat-report"[^}]*\} \d+\n/, 'and so do the metrics')
})

t.test('a run longer than the interval makes the next ticks skip, never overlap', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  let active = 0
  let maxActive = 0
  let finished = 0
  for (const n of c.nodes) {
    n.schedule('slow-export', { every: 100 }, async () => {
      maxActive = Math.max(maxActive, ++active)
      await new Promise(resolve => setTimeout(resolve, 450))
      active--
      finished++
    })
  }
  await eventually(() => finished >= 3, 20_000, 'three slow runs')
  t.equal(maxActive, 1, 'never two runs at once')
  await eventually(() => (c.nodes[1].status().schedules.find(x => x.task === 'slow-export')?.skipped ?? 0) >= 3, 10_000, 'skips counted')
  t.pass('skipped ticks are counted in status')
})

t.test('a task defined differently on two nodes is reported and does not run', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  let ran = 0
  c.nodes[0].schedule('report', { every: '100ms' }, async () => { ran++ })
  c.nodes[1].schedule('report', { every: '300ms' }, async () => { ran++ })
  await eventually(() => (c.nodes[2].status().schedules.find(x => x.task === 'report')?.conflicts ?? 0) >= 3, 10_000, 'conflicts counted')
  const s = c.nodes[2].status().schedules.find(x => x.task === 'report')
  t.match(s, { conflict: true, nodes: ['n1', 'n2'], runs: 0 })
  t.equal(ran, 0, 'neither definition ran')
  t.throws(() => c.nodes[0].schedule('report', { every: '1s' }, async () => {}), { name: 'InvalidArgumentError' }, 'one registration per name per node')
  t.throws(() => c.nodes[0].schedule('bad', { cron: '61 * * * *' }, async () => {}), { name: 'InvalidArgumentError' })
})

t.test('when the node running the task stops, the next ticks run on the others', async t => {
  const c = await startClusters(3)
  t.teardown(async () => { await c.stopAll() })
  const ranOn: string[] = []
  for (const n of c.nodes) n.schedule('sweep', { every: '150ms' }, async () => { ranOn.push(n.id) })
  await eventually(() => ranOn.length >= 3, 15_000, 'the first runs')
  const victim = c.nodes.find(n => n.id === ranOn[ranOn.length - 1])
  if (victim === undefined) throw new Error('no runner')
  await victim.stop()
  const before = ranOn.length
  await eventually(() => ranOn.length >= before + 4, 15_000, 'more runs after the stop')
  t.notOk(ranOn.slice(before + 1).includes(victim.id), 'the stopped node ran nothing more')
})
