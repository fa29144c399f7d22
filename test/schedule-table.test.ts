/**
 * The scheduler's state machine and the leader's tick arithmetic: each tick
 * is assigned once, round robin over the registered sessions, skipped while
 * the previous run goes, not run while definitions differ, and given back
 * when the runner's session ends; missed ticks follow the task's policy.
 */
import t from 'tap'
import type { Command } from '../lib/coordination/commands.js'
import { latestDue } from '../lib/scheduler/leader-ticks.js'
import { nextAfter, normalizeSchedule, parseInterval, parseSpecText, specText } from '../lib/scheduler/schedule-spec.js'
import { CoordinationLog } from './helpers/coordination-log.js'

const EVERY = specText(normalizeSchedule({ every: '1s' }))

function setup (): { log: CoordinationLog, tick: (at: number, run?: boolean) => void, assigned: string[] } {
  const log = new CoordinationLog()
  const assigned: string[] = []
  log.sm.schedules.on('assigned', a => assigned.push(`${a.session}@${a.scheduledAt}#${a.fence}`))
  const tick = (at: number, run = true): void => { log.append({ c: '', s: 0, lo: 0, cmd: { op: 'tick', task: 'purge', scheduledAt: at, run, missed: 0 } }) }
  return { log, tick, assigned }
}

t.test('each tick goes to one registered session, round robin, once; a tick at or before the last is ignored', async t => {
  const { log, tick, assigned } = setup()
  const [a, b] = [log.client('n1/a', 'n1'), log.client('n2/b', 'n2')]
  a.open()
  b.open()
  a.send({ op: 'task-register', task: 'purge', spec: EVERY })
  b.send({ op: 'task-register', task: 'purge', spec: EVERY })
  tick(1000)
  const f1 = log.index
  a.send({ op: 'task-done', task: 'purge', fence: f1, outcome: 'ok', error: null })
  tick(2000)
  const f2 = log.index
  tick(2000)
  tick(1500)
  t.same(assigned, [`n1/a@1000#${f1}`, `n2/b@2000#${f2}`], 'alternating, and the repeated and older ticks ran nothing')
  t.match(log.sm.schedules.get('purge'), { runs: 2, skipped: 0, lastScheduledAt: 2000, lastRun: { node: 'n1', outcome: 'ok' }, running: { node: 'n2', fence: f2 } })
  t.match(a.send({ op: 'task-done', task: 'purge', fence: f2, outcome: 'ok', error: null }), { ok: false }, 'only the runner can end its run')
})

t.test('a tick while the previous run goes is skipped; the runner\'s session end frees the task', async t => {
  const { log, tick, assigned } = setup()
  const a = log.client('n1/a', 'n1')
  const b = log.client('n2/b', 'n2')
  a.open()
  b.open()
  a.send({ op: 'task-register', task: 'purge', spec: EVERY })
  tick(1000)
  b.send({ op: 'task-register', task: 'purge', spec: EVERY })
  tick(2000)
  t.equal(log.sm.schedules.get('purge')?.skipped, 1, 'the second tick was skipped: the first run still goes')
  log.expire('n1/a')
  t.match(log.sm.schedules.get('purge'), { running: null, lastRun: { outcome: 'lost' } })
  tick(3000)
  t.equal(assigned.length, 2)
  t.match(assigned[1], /^n2\/b@3000/, 'the next tick ran on the node still registered')
})

t.test('definitions that differ stop the task and are counted; agreeing again lets it run', async t => {
  const { log, tick, assigned } = setup()
  const a = log.client('n1/a', 'n1')
  const b = log.client('n2/b', 'n2')
  a.open()
  b.open()
  a.send({ op: 'task-register', task: 'purge', spec: EVERY })
  t.match(b.send({ op: 'task-register', task: 'purge', spec: specText(normalizeSchedule({ every: '2s' })) }), { ok: true, value: { conflict: true } })
  tick(1000)
  t.same(assigned, [])
  t.equal(log.sm.schedules.get('purge')?.conflicts, 1)
  b.send({ op: 'task-unregister', task: 'purge' })
  tick(2000)
  t.equal(assigned.length, 1)
  t.match(a.send({ op: 'tick', task: 'purge', scheduledAt: 9000, run: true, missed: 0 } as Command), { ok: false, error: 'invalid' }, 'a session cannot propose ticks')
})

t.test('a snapshot carries tasks, runs and the round-robin cursor', async t => {
  const { log, tick } = setup()
  const a = log.client('n1/a', 'n1')
  const b = log.client('n2/b', 'n2')
  a.open()
  b.open()
  a.send({ op: 'task-register', task: 'purge', spec: EVERY })
  b.send({ op: 'task-register', task: 'purge', spec: EVERY })
  tick(1000)
  const replica = CoordinationLog.replicaOf(log)
  t.same(replica.sm.snapshot(), log.sm.snapshot())
  t.same(replica.sm.schedules.get('purge'), log.sm.schedules.get('purge'))
})

t.test('schedules: intervals, cron with a time zone, canonical text, and the ticks due after an outage', async t => {
  t.equal(parseInterval('250ms'), 250)
  t.equal(parseInterval('30s'), 30_000)
  t.equal(parseInterval('1.5h'), 5_400_000)
  t.throws(() => parseInterval('soon'), { name: 'InvalidArgumentError' })
  t.throws(() => parseInterval(10), { name: 'InvalidArgumentError' }, 'below 50 ms')
  t.throws(() => normalizeSchedule({ cron: 'not a cron' }), { name: 'InvalidArgumentError' })
  t.throws(() => normalizeSchedule({ cron: '0 3 * * *', timezone: 'Mars/Base' }), { name: 'InvalidArgumentError' })
  const nightly = normalizeSchedule({ cron: '0 3 * * *', timezone: 'Europe/Berlin' }, 'run-once')
  t.equal(new Date(nextAfter(nightly, Date.parse('2026-12-04T10:00:00Z'))).toISOString(), '2026-12-05T02:00:00.000Z', '03:00 in Berlin is 02:00 UTC in winter')
  t.same(parseSpecText(specText(nightly)), nightly, 'the canonical text round-trips')
  t.equal(specText(normalizeSchedule({ every: '1s' })), specText(normalizeSchedule({ every: 1000 })), 'the same schedule written two ways is one definition')
  const second = normalizeSchedule({ every: 1000 })
  t.same(latestDue(second, 10_000, 10_999), null, 'nothing due yet')
  t.same(latestDue(second, 10_000, 11_000), { at: 11_000, missed: 0 })
  t.same(latestDue(second, 10_000, 15_500), { at: 15_000, missed: 4 }, 'an outage: the latest due tick, four passed over')
})
