import t from 'tap'
import { HeldNotices, type Schedule } from '../raft/driver/held-notices.js'
import type { Message } from '../raft/core/messages.js'

const notice = (to: string, commit: number): Message => ({ type: 'Commit', from: 'a', to, term: 1, commit })
const append = (to: string, commit: number): Message => ({ type: 'Append', from: 'a', to, term: 1, prevIndex: commit - 1, prevTerm: 1, entries: [], commit })

/** A clock the test moves by hand: timers run only when advanced past their deadline. */
function manualClock (): { schedule: Schedule, advance: (ms: number) => void, pending: () => number } {
  let now = 0
  let timers: Array<{ at: number, fn: () => void, live: boolean }> = []
  return {
    schedule: (fn, ms) => {
      const timer = { at: now + ms, fn, live: true }
      timers.push(timer)
      return () => { timer.live = false }
    },
    advance: ms => {
      now += ms
      const due = timers.filter(x => x.live && x.at <= now)
      timers = timers.filter(x => x.live && x.at > now)
      for (const x of due) x.fn()
    },
    pending: () => timers.filter(x => x.live).length
  }
}

function setup (): { held: HeldNotices, sent: Message[][], clock: ReturnType<typeof manualClock> } {
  const clock = manualClock()
  const sent: Message[][] = []
  return { held: new HeldNotices(2, ms => { sent.push(ms) }, clock.schedule), sent, clock }
}

t.test('a held notice leaves after the delay, not before', async t => {
  const { held, sent, clock } = setup()
  held.hold([notice('b', 5)])
  clock.advance(1)
  t.same(sent, [])
  clock.advance(1)
  t.same(sent, [[notice('b', 5)]])
  t.equal(clock.pending(), 0)
})

t.test('an Append to the same follower drops the notice; others leave first, in order', async t => {
  const { held, sent, clock } = setup()
  held.hold([notice('b', 5), notice('c', 5)])
  held.beforeSend([append('b', 5)])
  t.same(sent, [[notice('c', 5)]], 'the notice to c leaves before the Append to b')
  t.equal(held.size, 0)
  t.equal(clock.pending(), 0, 'nothing held, no timer left')
  clock.advance(10)
  t.equal(sent.length, 1)
})

t.test('a timer left from dropped notices never sends newer ones early', async t => {
  // Back-to-back writes: write 5 commits (notice held), write 6's Append
  // drops it 0.5 ms later, write 6 commits 0.5 ms after that. Its notice must
  // wait its own 2 ms, not leave when write 5's timer would have fired.
  const { held, sent, clock } = setup()
  held.hold([notice('b', 5)])
  clock.advance(0.5)
  held.beforeSend([append('b', 5)])
  clock.advance(0.5)
  held.hold([notice('b', 6)])
  clock.advance(1)
  t.same(sent, [], 'not sent 1 ms after it was held')
  clock.advance(1)
  t.same(sent, [[notice('b', 6)]])
})

t.test('a newer notice replaces the held one; clear forgets everything', async t => {
  const { held, sent, clock } = setup()
  held.hold([notice('b', 5)])
  held.hold([notice('b', 7)])
  held.flush()
  t.same(sent, [[notice('b', 7)]])
  held.hold([notice('c', 8)])
  held.clear()
  clock.advance(5)
  t.equal(sent.length, 1)
  held.beforeSend([append('c', 9)])
  t.equal(sent.length, 1, 'nothing held, nothing sent')
})
