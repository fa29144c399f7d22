/**
 * The scheduled-task history checker on hand-made runs: a correct history
 * passes, and each planted fault is reported.
 */
import t from 'tap'
import { checkTicks, type TickRun } from '../testkit/checks/tick-history.js'

const run = (node: number, fence: number, scheduledAt: number, startedAt: number, heldUntil = startedAt + 50): TickRun => ({ node, fence: BigInt(fence), scheduledAt, startedAt, heldUntil })
const good = [run(0, 10, 200, 205), run(1, 14, 400, 402), run(2, 19, 600, 610), run(0, 25, 800, 801)]

t.test('a correct history passes', async t => {
  t.same(checkTicks(good, { maxGapMs: 1000 }), [])
})

t.test('each planted fault is reported', async t => {
  t.match(checkTicks([...good, run(1, 30, 600, 1000)], { maxGapMs: 1000 }), [/tick 600 ran twice/])
  t.match(checkTicks([run(0, 10, 200, 205), run(1, 9, 400, 402)], { maxGapMs: 1000 }), [/fence 9, not above/])
  t.match(checkTicks([run(0, 10, 200, 205, 450), run(1, 14, 400, 402)], { maxGapMs: 1000 }), [/while n1's run of tick 200 was valid until 450/])
  t.match(checkTicks([run(0, 10, 200, 205), run(1, 14, 4000, 4002)], { maxGapMs: 1000 }), [/no run for 3797 ms/])
})
