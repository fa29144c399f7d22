/**
 * The send window (gossip/send-window.ts): publishing waits while a peer's
 * gossipsub stream is backed up, resumes when it drains, and stops waiting
 * for a stream that has been full for the stall time; and the turn budget
 * (gossip/turn-budget.ts) that lets received gossip step aside for timers.
 */
import type { Stream } from '@libp2p/interface'
import t from 'tap'
import { SendWindow } from '../gossip/send-window.js'
import { TurnBudget } from '../gossip/turn-budget.js'

/** The parts of a libp2p stream the window reads, with a drain the test triggers. */
class FakeStream {
  status = 'open'
  writableNeedsDrain = false
  writeBufferLength = 0
  private drained: Array<() => void> = []

  fill (bytes: number): void {
    this.writableNeedsDrain = true
    this.writeBufferLength = bytes
  }

  drain (): void {
    this.writableNeedsDrain = false
    this.writeBufferLength = 0
    for (const d of this.drained.splice(0)) d()
  }

  async onDrain (opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (!this.writableNeedsDrain) return
    await new Promise<void>((resolve, reject) => {
      this.drained.push(resolve)
      opts.signal?.addEventListener('abort', () => { reject(opts.signal?.reason) }, { once: true })
    })
  }
}

function windowOver (streams: FakeStream[], now: () => number, stallMs = 500): SendWindow {
  return new SendWindow({ streams: { outbound: () => streams as unknown as Stream[] }, highWaterBytes: 1000, stallMs, now })
}

/** Whether `p` has settled once pending callbacks have run. */
async function settled (p: Promise<unknown>): Promise<boolean> {
  let done = false
  void p.then(() => { done = true })
  await new Promise(resolve => setImmediate(resolve))
  return done
}

t.test('open() resolves at once while no stream is over the mark', async t => {
  const a = new FakeStream()
  a.writeBufferLength = 5000
  const w = windowOver([a, new FakeStream()], () => 0)
  t.ok(await settled(w.open()), 'bytes that wait for no drain do not count')
  t.equal(w.waited, 0)
})

t.test('open() waits for a backed-up stream to drain', async t => {
  const a = new FakeStream()
  const b = new FakeStream()
  a.fill(2000)
  const w = windowOver([a, b], () => 0)
  const open = w.open()
  t.notOk(await settled(open), 'held while a stream is over the mark')
  b.fill(3000)
  a.drain()
  t.notOk(await settled(open), 'then held by the other one')
  b.drain()
  t.ok(await settled(open), 'resolved once both drained')
  t.equal(w.waited, 2)
})

t.test('a stream full for the stall time no longer holds publishing back', async t => {
  let now = 0
  const stalled = new FakeStream()
  stalled.fill(2000)
  const w = windowOver([stalled], () => now, 500)
  const first = w.open()
  t.notOk(await settled(first), 'a newly full stream is waited for')
  now = 499
  t.notOk(await settled(w.open()), 'still within the stall time')
  now = 500
  t.ok(await settled(w.open()), 'stalled: left out')
  stalled.drain()
  t.ok(await settled(first))
  stalled.fill(2000)
  t.notOk(await settled(w.open()), 'once it drained, it counts again when it backs up')
  stalled.drain()
})

t.test('the turn budget runs out within one turn and starts over in the next', async t => {
  let now = 0
  const turn = new TurnBudget(20, () => now)
  t.notOk(turn.overdue(), 'the first check starts the turn')
  now = 20
  t.notOk(turn.overdue(), 'at the budget: not over it')
  now = 21
  t.ok(turn.overdue(), 'past it')
  await turn.pause()
  t.equal(turn.paused, 1)
  t.notOk(turn.overdue(), 'after a pause, a new turn')
  now = 30
  t.notOk(turn.overdue())
})

t.test('a pause lets a timer that was due run first', async t => {
  const order: string[] = []
  setTimeout(() => { order.push('timer') }, 0)
  const start = performance.now()
  while (performance.now() - start < 5) { /* the timer becomes due */ }
  const turn = new TurnBudget(1)
  turn.overdue()
  await turn.pause()
  order.push('after pause')
  t.same(order, ['timer', 'after pause'])
})
