/**
 * One etcd user process for `npm run bench -- locks`: an `etcd3` client
 * aimed at one member (as each raftmesh process embeds one node), taking
 * locks the way that client's users do, with the timing done here so the
 * IPC hop to the bench is not measured.
 *
 * Usage (spawned by bench/etcd-locks.ts with an IPC channel):
 *   node --import tsx bench/procs/etcd-lock-client.ts '<{"endpoint","ttlSeconds"}>'
 * Requests {id, type, ...} are answered with {id, ok, ...}; see the handlers.
 * Stops when the IPC channel closes.
 */
import { performance } from 'node:perf_hooks'
import { noop } from 'cockatiel'
import { Etcd3, EtcdLockFailedError, type Lock } from 'etcd3'
import { machineNow as now, type CycleTimes } from '../../testkit/cluster-node-protocol.js'
import { exitWithParent } from './lifecycle.js'

interface ClientArgs { endpoint: string, ttlSeconds: number }

if (process.send === undefined) {
  console.error('etcd-lock-client must be spawned with an IPC channel')
  process.exit(2)
}
const send = (m: object): void => { if (process.connected) process.send?.(m) }
const args = JSON.parse(process.argv[2] ?? '{}') as ClientArgs
// etcd3's defaults but for the per-host circuit breaker, which after three
// failed calls refuses every call for 5 s: with one endpoint per client a
// failover could then time the client's back-off instead of etcd (run 1,
// with the breaker, had SIGSTOP rounds of 4.97 and 12.03 s). Its global
// retry (3 attempts) stays.
const client = new Etcd3({ hosts: [args.endpoint], faultHandling: { host: () => noop } })
const held = new Map<string, Lock>()

const withDeadline = async <T>(p: Promise<T>, ms: number): Promise<T> => {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`no answer within ${ms} ms`)) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

/** A lock granted after its caller gave up is released, not left held by its lease's keep-alives. */
async function giveBackIfLate (acquiring: Promise<Lock>, ms: number): Promise<Lock> {
  try {
    return await withDeadline(acquiring, ms)
  } catch (err) {
    void acquiring.then(async lock => { await lock.release() }).catch(() => {})
    throw err
  }
}

/**
 * etcd3's Lock does not wait: it fails with EtcdLockFailedError while the
 * key is held. Its users retry; this one retries when a watch sees the key
 * deleted (a released lock or an expired lease), not on a timer, so no
 * attempt is wasted on a key that is still held.
 */
async function acquireWaiting (key: string, deadline: number): Promise<Lock> {
  for (;;) {
    const watcher = await withDeadline(client.watch().key(key).create(), Math.max(1, deadline - performance.now()))
    try {
      const deleted = new Promise<void>(resolve => { watcher.once('delete', () => { resolve() }) })
      try {
        return await giveBackIfLate(client.lock(key).ttl(args.ttlSeconds).acquire(), Math.max(1, deadline - performance.now()))
      } catch (err) {
        if (!(err instanceof EtcdLockFailedError)) throw err
      }
      await withDeadline(deleted, Math.max(1, deadline - performance.now()))
    } finally {
      void watcher.cancel().catch(() => {})
    }
  }
}


/** Acquire+release with etcd3's Lock in a loop on one key. */
async function cycle (key: string, count: number, maxMs: number): Promise<CycleTimes> {
  const t: CycleTimes = { requestedAt: [], grantedAt: [], releasedAt: [] }
  const end = now() + maxMs
  for (let i = 0; i < count && now() < end; i++) {
    const t0 = now()
    const lock = await client.lock(key).ttl(args.ttlSeconds).acquire()
    const t1 = now()
    await lock.release()
    t.requestedAt.push(t0)
    t.grantedAt.push(t1)
    t.releasedAt.push(now())
  }
  return t
}

/**
 * The contended loop. etcd3's Lock fails at once on a held key; the
 * client's FIFO primitive that waits is the Election (each candidate waits
 * for the delete of the key created just before its own, as etcd's Go
 * concurrency.Mutex does): campaign, wait to be elected, resign, again.
 */
async function contend (key: string, count: number, maxMs: number): Promise<CycleTimes> {
  const t: CycleTimes = { requestedAt: [], grantedAt: [], releasedAt: [] }
  const election = client.election(key, args.ttlSeconds)
  const end = now() + maxMs
  for (let i = 0; i < count && now() < end; i++) {
    const t0 = now()
    const campaign = election.campaign(String(process.pid))
    try {
      await withDeadline(campaign.wait(), Math.max(1, end - now()) + 10_000)
    } catch (err) {
      await campaign.resign().catch(() => {})
      throw err
    }
    const t1 = now()
    await campaign.resign()
    t.requestedAt.push(t0)
    t.grantedAt.push(t1)
    t.releasedAt.push(now())
  }
  return t
}

let holding: AbortController | null = null

/**
 * The fault benchmark's loop (bench/faults/etcd-row.ts): acquire (waiting), hold, release, again, until `stop-holding`,
 * reporting each grant with its fence, the lock key's create revision (what etcd's concurrency.Mutex users fence
 * with), and each release as the holder stops using the lock. The holder has no way to tell that its lease lapsed
 * while it was frozen: etcd3's Lock offers none.
 */
async function holdLoop (key: string, holdMs: number, gapMs: number, timeoutMs: number, stop: AbortSignal): Promise<void> {
  let n = 0
  while (!stop.aborted) {
    const requestedAt = now()
    let lock: Lock
    try {
      lock = await acquireWaiting(key, performance.now() + timeoutMs)
    } catch (err) {
      send({ type: 'event', event: { type: 'error', op: `acquire ${key}`, name: (err as Error).name, message: (err as Error).message, at: now() } })
      await new Promise(resolve => setTimeout(resolve, 50))
      continue
    }
    const grantedAt = now()
    const owner = `${process.pid}.${++n}`
    const lease = await lock.leaseId()
    const kv = (await client.get(key).exec().catch(() => null))?.kvs[0]
    // The key still carries our lease: the grant is ours, fenced by the key's create revision.
    const valid = kv !== undefined && lease !== null && String(kv.lease) === String(lease)
    send({ type: 'event', event: { type: 'granted', workload: 'etcd', lock: key, fence: BigInt(valid ? kv.create_revision : 0), owner, requestedAt, valid, at: grantedAt } })
    await new Promise(resolve => setTimeout(resolve, holdMs))
    send({ type: 'event', event: { type: 'released', workload: 'etcd', lock: key, fence: BigInt(valid ? kv.create_revision : 0), owner, at: now() } })
    await lock.release().catch(() => {})
    await new Promise(resolve => setTimeout(resolve, gapMs))
  }
}

type Request =
  | { id: number, type: 'hold', key: string, holdMs: number, gapMs: number, timeoutMs: number }
  | { id: number, type: 'stop-holding' }
  | { id: number, type: 'cycle', key: string, count: number, maxMs: number }
  | { id: number, type: 'contend', key: string, count: number, maxMs: number }
  | { id: number, type: 'acquire', key: string, timeoutMs: number }
  | { id: number, type: 'try-acquire', key: string, timeoutMs: number }
  | { id: number, type: 'release', key: string }

async function handle (r: Request): Promise<object> {
  switch (r.type) {
    case 'hold': {
      holding = new AbortController()
      void holdLoop(r.key, r.holdMs, r.gapMs, r.timeoutMs, holding.signal)
      return {}
    }
    case 'stop-holding':
      holding?.abort()
      return {}
    case 'cycle': return await cycle(r.key, r.count, r.maxMs)
    case 'contend': return await contend(r.key, r.count, r.maxMs)
    case 'acquire': {
      held.set(r.key, await acquireWaiting(r.key, performance.now() + r.timeoutMs))
      return { grantedAt: now() }
    }
    case 'try-acquire': {
      // One attempt with a deadline, as a caller retrying through a failover makes.
      held.set(r.key, await giveBackIfLate(client.lock(r.key).ttl(args.ttlSeconds).acquire(), r.timeoutMs))
      return { grantedAt: now() }
    }
    case 'release': {
      const lock = held.get(r.key)
      held.delete(r.key)
      await lock?.release()
      return {}
    }
  }
}

exitWithParent(async () => { client.close() })
process.on('message', (r: Request) => {
  handle(r).then(
    result => { send({ id: r.id, ok: true, ...result }) },
    (err: Error) => { send({ id: r.id, ok: false, error: `${err.name}: ${err.message}` }) }
  )
})
send({ type: 'ready' })
