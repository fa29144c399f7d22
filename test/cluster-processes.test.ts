/**
 * Three real processes embed a Cluster each (testkit/cluster-processes.ts)
 * and loop acquire → hold → release on one lock while nodes are SIGKILLed
 * and restarted (the leader too, while a follower holds a lock another
 * waits for), and SIGSTOPped past their session TTL; the recorded history
 * must pass the lock checker. Then a leader cut off from the others panics,
 * its handles aborted first.
 */
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { ClusterProcesses, machineNow, type HistoryEntry, type LockWorkload } from '../testkit/cluster-processes.js'
import { checkLockHistory } from '../testkit/checks/lock-history.js'

const TTL = 2000
const PANIC_AFTER = 1000
// Long enough that a grant seen by the test is still held when the test's SIGKILL or SIGSTOP lands.
const job: LockWorkload = { lock: 'job', holdMs: 400, acquireTimeoutMs: 30_000 }
const WAIT = 30_000

type Granted = Extract<HistoryEntry, { type: 'granted' }>
const isGrant = (e: HistoryEntry): e is Granted => e.type === 'granted' && e.lock === 'job' && e.valid
const endOf = (c: ClusterProcesses, owner: string): HistoryEntry | undefined =>
  c.history.find(e => (e.type === 'released' || e.type === 'lost') && e.owner === owner)

t.test('three processes share one lock through SIGKILLs, restarts and SIGSTOPs past the TTL', async t => {
  const c = await ClusterProcesses.start({ nodes: 3, sessionTtlMs: TTL, panicAfterMs: PANIC_AFTER })
  t.teardown(async () => { await c.stop() })
  const nextGrant = async (what: string, match: (g: Granted) => boolean = () => true): Promise<Granted> =>
    await c.waitFor(e => isGrant(e) && match(e), WAIT, what) as Granted
  const rejoin = async (i: number): Promise<void> => {
    await c.restart(i)
    await c.startWorkload(i, job)
  }
  for (let i = 0; i < 3; i++) await c.startWorkload(i, job)
  for (let i = 0; i < 6; i++) await nextGrant('the nodes to take turns')

  await t.test('the holder is SIGKILLed, its lock is granted elsewhere, and it restarts', async t => {
    // A grant the test sees may already be over when the kill lands; try again until one is not.
    for (let attempt = 1; attempt <= 5; attempt++) {
      const g = await nextGrant('a grant to kill')
      const killedAt = machineNow()
      await c.kill(g.node)
      const caught = endOf(c, g.owner) === undefined
      if (caught) {
        const next = await nextGrant('the lock of the killed holder to move on')
        t.not(next.node, g.node, `${c.nodes[g.node].id} was killed holding fence ${g.fence}; ${c.nodes[next.node].id} got fence ${next.fence} ${Math.round(next.at - killedAt)} ms later`)
      }
      await rejoin(g.node)
      if (!caught) continue
      await nextGrant('the restarted node to get the lock again', x => x.node === g.node)
      return
    }
    t.fail('no holder caught holding in 5 tries')
  })

  await t.test('a node that does not hold the lock (the leader if it can) is SIGKILLed and restarts', async t => {
    const leader = await c.leader()
    const g = await nextGrant('a grant')
    const victim = leader !== g.node ? leader : [0, 1, 2].find(i => i !== g.node) as number
    await c.kill(victim)
    await nextGrant('a grant without the killed node', x => x.node !== g.node)
    await rejoin(victim)
    await nextGrant('the restarted node to get the lock again', x => x.node === victim)
    t.pass(`${c.nodes[victim].id} killed and back`)
  })

  await t.test('the leader is SIGKILLed while a follower holds another lock and the other follower waits for it', async t => {
    // The new leader must count the holder's session as heard when it takes over; expiring it at once would grant
    // the lock to the waiter while the holder still holds it (caught when the waiter is the new leader, which
    // applies the grant before the holder applies its session's end).
    const leader = await c.leader()
    const [holder, waiter] = [0, 1, 2].filter(i => i !== leader)
    // Listening before the start: the grant can arrive in the same read from the child as the start's answer.
    await Promise.all([
      c.startWorkload(holder, { lock: 'failover', holdMs: 2500, count: 1 }),
      c.waitFor(e => e.type === 'granted' && e.lock === 'failover', WAIT, 'the follower to hold the lock')
    ])
    await c.startWorkload(waiter, { lock: 'failover', holdMs: 100, count: 1, acquireTimeoutMs: WAIT })
    const until = machineNow() + WAIT
    while ((await c.status(holder)).locks.find(l => l.name === 'failover')?.waiters !== 1 && machineNow() < until) await sleep(20)
    await c.kill(leader)
    await c.waitFor(e => e.type === 'workload-done' && e.node === waiter, WAIT * 2, 'the waiter to get the lock and finish')
    await rejoin(leader)
    t.same(checkLockHistory(c.history, { lock: 'failover', sessionTtlMs: TTL, regrantSlackMs: 4000, minGrants: 2 }), [], 'both got the lock, one after the other')
  })

  await t.test('the holder is SIGSTOPped until its session expires and the lock moves on; after SIGCONT it acts no more as holder', async t => {
    // As with the kill: the grant the test sees may be over when the SIGSTOP lands; try again until it is not.
    for (let attempt = 1; attempt <= 5; attempt++) {
      const g = await nextGrant('a grant to pause')
      const pausedAt = machineNow()
      c.pause(g.node)
      // Paused until its session has expired (the TTL after the leader last heard from it) and the lock has moved on,
      // then resumed at once: a holder that believes in its lease longer than the leader keeps its session would
      // still find valid() passing.
      const next = await nextGrant('a grant while the holder is paused', x => x.node !== g.node)
      const resumedAt = machineNow()
      c.resume(g.node)
      const lost = endOf(c, g.owner) ?? await c.waitFor(e => (e.type === 'lost' || e.type === 'released') && e.owner === g.owner, WAIT, 'the resumed holder to see its lock lost')
      if (lost.at < pausedAt) continue
      if (lost.type !== 'lost') {
        t.fail(`${c.nodes[g.node].id} paused holding fence ${g.fence} released it after SIGCONT as if it still held it`)
        return
      }
      const since = (at: number | null): string => at === null ? 'never' : `${Math.round(at - resumedAt)} ms`
      t.pass(`${c.nodes[g.node].id}, paused holding fence ${g.fence} while fence ${next.fence} went to ${c.nodes[next.node].id}, saw it lost ${since(lost.at)} after SIGCONT (${lost.reason}); its last passing valid() was at ${since(lost.heldUntil)}`)
      await nextGrant('the resumed node to get the lock again', x => x.node === g.node)
      return
    }
    t.fail('no holder caught holding in 5 tries')
  })

  await t.test('the leader is SIGSTOPped past the TTL: another leader serves the lock', async t => {
    const leader = await c.leader()
    const pausedAt = machineNow()
    c.pause(leader)
    await nextGrant('a grant while the leader is paused', x => x.node !== leader && x.at > pausedAt)
    await sleep(Math.max(0, pausedAt + TTL + 1000 - machineNow()))
    c.resume(leader)
    const resumedAt = machineNow()
    // On failure, what the node saw: this failed once in four CI runs while a
    // resumed node's first rpc stream, refused before the callee had admitted
    // it, left its forwarded proposals timing out forever (fixed in rpc-link).
    await t.test('and the old one gets the lock again after SIGCONT', async t => {
      try {
        await nextGrant('the old leader to get the lock again', x => x.node === leader)
        t.pass(`${c.nodes[leader].id} paused and back`)
      } catch (err) {
        const seen = c.history.filter(e => e.node === leader && e.at > resumedAt).slice(-20)
        t.comment(JSON.stringify(await c.status(leader).catch(e => String(e))).slice(0, 2000))
        t.comment(JSON.stringify(seen, (_k, v: unknown) => typeof v === 'bigint' ? String(v) : v).slice(0, 4000))
        throw err
      }
    })
  })

  await Promise.all([0, 1, 2].map(async i => { await c.stopWorkloads(i) }))
  // A killed holder's lock waits for its session to expire: the TTL after the leader last heard it, or after a new
  // leader took over when the holder led (election ~0.5-1 s), plus the expiry check, a commit, and a loaded machine.
  const violations = checkLockHistory(c.history, { lock: 'job', sessionTtlMs: TTL, regrantSlackMs: 4000, minGrants: 20 })
  if (violations.length > 0) {
    const file = join(tmpdir(), `raftmesh-lock-history-${process.pid}.json`)
    writeFileSync(file, JSON.stringify(c.history, (_k, v: unknown) => typeof v === 'bigint' ? String(v) : v, 1))
    t.comment(`history written to ${file}`)
  }
  t.same(violations, [], `the history of ${c.history.filter(isGrant).length} grants is correct`)

  await t.test('a leader cut off from the others (both SIGSTOPped) aborts its handles, then panics within panicAfterMs + 200 ms', async t => {
    const leader = await c.leader()
    const others = [0, 1, 2].filter(i => i !== leader)
    const [, g] = await Promise.all([
      c.startWorkload(leader, { lock: 'report', holdMs: 60_000, count: 1 }),
      c.waitFor(e => e.type === 'granted' && e.lock === 'report', WAIT, 'the leader to hold a lock') as Promise<Granted>
    ])
    const cutAt = machineNow()
    for (const i of others) c.pause(i)
    const panic = await c.waitFor(e => e.type === 'panic' && e.node === leader, WAIT, 'the cut-off leader to panic')
    for (const i of others) c.resume(i)
    // The handle aborts before the panic is emitted, but its report may arrive second.
    const lost = endOf(c, g.owner) ?? await c.waitFor(e => e.type === 'lost' && e.owner === g.owner, WAIT, 'the handle to abort')
    if (panic.type !== 'panic' || lost.type !== 'lost') throw new Error(`the holder's handle ended with ${lost.type}, not lost`)
    // Both times come from the leader's own clock, in the order its code ran: no margin needed.
    t.ok(lost.at <= panic.at, `its handle aborted (${Math.round(lost.at - cutAt)} ms after the cut: ${lost.reason}) before it panicked (${Math.round(panic.at - cutAt)} ms)`)
    t.ok(lost.at > cutAt, 'and not before the cut')
    // sinceMs is the leader's own measure from the last answer a majority gave it to the panic. It cannot be less
    // than panicAfterMs; above it is only the panic timer's lateness, in a process with nothing else to do (its peers
    // are stopped). The 200 ms the issue allows is that lateness, not a bound on how fast this machine is.
    t.ok(panic.sinceMs >= PANIC_AFTER, `no panic before panicAfterMs (${panic.sinceMs} ms without a majority)`)
    t.ok(panic.sinceMs <= PANIC_AFTER + 200, `the panic came within panicAfterMs + 200 ms of the last answer (${panic.sinceMs} ms)`)
    const until = machineNow() + WAIT
    while ((await c.status(leader)).panic !== null && machineNow() < until) await sleep(100)
    t.equal((await c.status(leader)).panic, null, 'it recovers once the others answer again (onPanic: report)')
  })
})
