import t from 'tap'
import { Beat } from '../gossip/beat.js'

/** Intervals set and not cleared since the spy went in. */
let live = 0
const realSet = globalThis.setInterval
const realClear = globalThis.clearInterval
function spyOnIntervals (): () => void {
  globalThis.setInterval = ((fn: () => void, ms: number) => { live++; return realSet(fn, ms) }) as typeof setInterval
  globalThis.clearInterval = ((timer: NodeJS.Timeout) => { live--; realClear(timer) }) as typeof clearInterval
  return () => { globalThis.setInterval = realSet; globalThis.clearInterval = realClear }
}
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

t.test('one timer runs every callback each beat, and only while one is registered', async t => {
  const beat = new Beat(20)
  const turns: Array<[string, number]> = []
  let turn = 0
  const tick = setInterval(() => { turn++ }, 1)
  t.teardown(() => { clearInterval(tick) })
  t.teardown(spyOnIntervals())
  const removeA = beat.add(() => { turns.push(['a', turn]) })
  const removeB = beat.add(() => { turns.push(['b', turn]) })
  t.equal(live, 1, 'two callbacks, one timer')
  await sleep(110)
  const a = turns.filter(x => x[0] === 'a')
  const b = turns.filter(x => x[0] === 'b')
  t.ok(a.length >= 2, `a ran each beat (${a.length} times)`)
  t.same(b.map(x => x[1]), a.map(x => x[1]), 'b ran in the same wake-ups as a')
  removeA()
  const seen = turns.length
  await sleep(50)
  t.ok(turns.slice(seen).every(x => x[0] === 'b'), 'a removed runs no more')
  removeB()
  t.equal(live, 0, 'no callback left, no timer left')
  const after = turns.length
  await sleep(50)
  t.equal(turns.length, after, 'nothing runs once all are removed')
})
