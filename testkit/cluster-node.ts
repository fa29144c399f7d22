/**
 * One process embedding one Cluster, as a server would, driven by its
 * parent (testkit/cluster-processes.ts) over IPC: lock, queue, schedule,
 * cache and event workloads, status,
 * a clean stop. Every event is reported to the parent as it happens, with a
 * machine-wide timestamp (see cluster-node-protocol.ts).
 *
 *   RAFTMESH_SECRET=... node --import tsx testkit/cluster-node.ts '<NodeConfig as JSON>'
 *
 * Prints one line `{"event":"ready","id",...,"peerId","addrs"}` on stdout
 * once joined. Exits with its parent (IPC disconnect).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { peerIdFromString } from '@libp2p/peer-id'
import { pino } from 'pino'
import { Cluster, type Job, type LockHandle } from '../lib/index.js'
import { cacheContents, runCacheWorkload } from './cache-workload.js'
import { machineNow, type ChildMessage, type CycleLoop, type CycleTimes, type LockWorkload, type NodeConfig, type NodeEventBody, type ProcessWorkload, type ProduceWorkload, type QueueState, type Request, type ScheduleWorkload } from './cluster-node-protocol.js'
import { runEventWorkload } from './event-workload.js'

function report (event: NodeEventBody, at = machineNow()): void {
  send({ kind: 'event', event: { ...event, at } })
}

function send (msg: ChildMessage): void {
  // Sent before the next step of the workload: a release is reported before it can be applied anywhere.
  process.send?.(msg)
}

function errorText (err: unknown): { name: string, message: string } {
  return err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) }
}

/** Runs one acquire → hold → release loop until its bounds or `stop`. */
async function runWorkload (cluster: Cluster, workload: string, w: LockWorkload, stop: AbortSignal): Promise<void> {
  const stepMs = w.stepMs ?? 20
  const until = w.durationMs === undefined ? Infinity : machineNow() + w.durationMs
  let grants = 0
  while (!stop.aborted && grants < (w.count ?? Infinity) && machineNow() < until) {
    const requestedAt = machineNow()
    let h: LockHandle
    try {
      h = await cluster.lock(w.lock).acquire({ timeoutMs: w.acquireTimeoutMs ?? 10_000, signal: stop })
    } catch (err) {
      if (stop.aborted) break
      report({ type: 'error', op: `acquire ${w.lock}`, ...errorText(err) })
      // A node without a session (panicked, reconnecting) fails fast: don't spin.
      await sleep(50)
      continue
    }
    grants++
    const owner = `${cluster.id}.${process.pid}.${workload}.${grants}`
    let releasing = false
    let firedAt: number | null = null
    h.signal.addEventListener('abort', () => { if (!releasing) firedAt = machineNow() }, { once: true })
    const grantedAt = machineNow()
    const valid = h.valid()
    const common = { workload, lock: w.lock, fence: h.fence, owner }
    report({ type: 'granted', ...common, requestedAt, valid }, grantedAt)
    let heldUntil: number | null = valid ? grantedAt : null
    const end = grantedAt + w.holdMs
    while (heldUntil !== null) {
      const left = end - machineNow()
      if (left <= 0) break
      await sleep(Math.min(stepMs, left), undefined, { signal: h.signal }).catch(() => {})
      // valid() reads the monotonic clock: after a SIGSTOP it is false before the lease timer has run.
      const now = machineNow()
      if (h.signal.aborted || !h.valid()) break
      heldUntil = now
    }
    if (heldUntil !== null && !h.signal.aborted && h.valid()) {
      releasing = true
      report({ type: 'released', ...common }, heldUntil)
    } else {
      const reason = h.signal.aborted ? errorText(h.signal.reason).message : 'valid() returned false'
      report({ type: 'lost', ...common, reason, heldUntil }, firedAt ?? machineNow())
      releasing = true
    }
    await h.release()
    if (w.gapMs !== undefined && w.gapMs > 0) await sleep(w.gapMs, undefined, { signal: stop }).catch(() => {})
  }
  report({ type: 'workload-done', workload, grants })
}

/** Times acquire → release back to back; the timings go back in one reply, so no IPC message runs between grants. */
async function runCycles (cluster: Cluster, c: CycleLoop): Promise<CycleTimes> {
  const t: CycleTimes = { requestedAt: [], grantedAt: [], releasedAt: [] }
  const lock = cluster.lock(c.lock)
  const until = machineNow() + c.durationMs
  for (let i = 0; i < c.count && machineNow() < until; i++) {
    const requestedAt = machineNow()
    const h = await lock.acquire({ timeoutMs: c.acquireTimeoutMs ?? 30_000 })
    const grantedAt = machineNow()
    await h.release()
    t.requestedAt.push(requestedAt)
    t.grantedAt.push(grantedAt)
    t.releasedAt.push(machineNow())
  }
  return t
}

/** Enqueues the workload's items, each id once, `inFlight` at a time, until done or `stop`. */
async function runProducer (cluster: Cluster, workload: string, w: ProduceWorkload, stop: AbortSignal): Promise<void> {
  const q = cluster.queue<{ id: string }>(w.queue, { maxAttempts: w.maxAttempts })
  let next = 0
  let acknowledged = 0
  const slot = async (): Promise<void> => {
    while (!stop.aborted && next < w.count) {
      const id = `${w.idPrefix}.${++next}`
      const common = { workload, queue: w.queue, id }
      report({ type: 'enqueue-sent', ...common })
      try {
        const r = await q.enqueue({ id }, { id, timeoutMs: w.timeoutMs ?? 10_000, signal: stop })
        acknowledged++
        report({ type: 'enqueued', ...common, duplicate: r.duplicate })
      } catch (err) {
        report({ type: 'enqueue-failed', ...common, ...errorText(err) })
        if (stop.aborted) break
        // A node without a session (panicked, reconnecting) fails fast: don't spin.
        await sleep(50)
        continue
      }
      if (w.gapMs !== undefined && w.gapMs > 0) await sleep(w.gapMs, undefined, { signal: stop }).catch(() => {})
    }
  }
  await Promise.all(Array.from({ length: w.inFlight }, slot))
  report({ type: 'workload-done', workload, grants: acknowledged })
}

/** Jobs in workers' hands: `act` records a step of work done now if the claim is still valid (see the 'touch-jobs' request). */
const heldJobs = new Set<{ act: () => boolean }>()

/** Registers a task until `stop`; each run it is given works for `workMs` (or until its signal aborts) and is reported. */
async function runSchedule (cluster: Cluster, workload: string, w: ScheduleWorkload, stop: AbortSignal): Promise<void> {
  const task = cluster.schedule(w.task, { every: w.everyMs }, async ({ fence, scheduledAt, signal, valid }) => {
    const startedAt = machineNow()
    let heldUntil = startedAt
    // Work in steps guarded by valid(), as a task writing batches would.
    while (machineNow() - startedAt < w.workMs && valid()) {
      heldUntil = machineNow()
      await sleep(Math.min(10, w.workMs), undefined, { signal }).catch(() => {})
    }
    report({ type: 'task-run', workload, task: w.task, fence, scheduledAt, startedAt, heldUntil, endedAt: machineNow(), outcome: valid() ? 'ok' : 'aborted' })
  })
  await new Promise(resolve => { stop.addEventListener('abort', resolve, { once: true }) })
  await task.stop()
}

/** Runs `queue.process()` until `stop`, then stops the processor (which gives running items back). */
async function runProcessor (cluster: Cluster, workload: string, w: ProcessWorkload, stop: AbortSignal): Promise<void> {
  const q = cluster.queue<{ id: string }>(w.queue, { maxAttempts: w.maxAttempts })
  const stepMs = w.stepMs ?? 20
  let starts = 0
  const handle = async (job: Job<{ id: string }>): Promise<void> => {
    const owner = `${cluster.id}.${process.pid}.${workload}.${++starts}`
    let firedAt: number | null = null
    job.signal.addEventListener('abort', () => { firedAt ??= machineNow() }, { once: true })
    const startedAt = machineNow()
    // valid() reads the monotonic clock: after a SIGSTOP it is false before the claim's timer has run.
    const valid = job.valid()
    const common = { workload, queue: w.queue, id: job.id, fence: job.fence, owner }
    report({ type: 'job-started', ...common, attempt: job.attempt, visibilityMs: w.visibilityMs, valid }, startedAt)
    let heldUntil: number | null = valid ? startedAt : null
    const end = startedAt + w.workMs
    let worked = false
    const held = {
      act: (): boolean => {
        const now = machineNow()
        if (heldUntil === null || job.signal.aborted || !job.valid()) return false
        heldUntil = now
        return true
      }
    }
    heldJobs.add(held)
    try {
      while (heldUntil !== null) {
        const left = end - machineNow()
        if (left <= 0) {
          worked = true
          break
        }
        await sleep(Math.min(stepMs, left), undefined, { signal: job.signal }).catch(() => {})
        if (!held.act()) break
      }
    } finally {
      heldJobs.delete(held)
    }
    if (worked && heldUntil !== null && job.valid()) {
      report({ type: 'job-ack-sent', ...common, heldUntil })
      try {
        await job.ack()
        report({ type: 'job-acked', ...common })
      } catch (err) {
        report({ type: 'job-ack-failed', ...common, ...errorText(err), heldUntil, firedAt })
      }
      return
    }
    const reason = job.signal.aborted ? errorText(job.signal.reason).message : 'valid() returned false'
    report({ type: 'job-lost', ...common, reason, heldUntil, firedAt }, firedAt ?? machineNow())
    // process() nacks a throw whose signal has not fired, and a nack retries the item after a backoff: let the
    // (overdue, after a SIGSTOP) claim timer fire first, so the claim simply ends.
    if (!job.signal.aborted) await new Promise(resolve => { job.signal.addEventListener('abort', resolve, { once: true }) })
    throw new Error(`lost: ${reason}`)
  }
  const p = q.process(handle, { concurrency: w.concurrency, visibilityMs: w.visibilityMs, maxAttempts: w.maxAttempts, backoffMs: () => 50 })
  if (!stop.aborted) await new Promise(resolve => { stop.addEventListener('abort', resolve, { once: true }) })
  await p.stop()
  report({ type: 'workload-done', workload, grants: starts })
}

async function queueState (cluster: Cluster, name: string): Promise<QueueState> {
  const q = cluster.queue(name)
  const s = await q.stats()
  const dead = await q.deadLetters()
  return {
    stats: { depth: s.depth, inFlight: s.inFlight, deadLetters: s.deadLetters, acked: s.acked },
    deadLetters: dead.map(d => ({ id: d.id, attempts: d.attempts, lastError: d.lastError })),
    appliedIndex: cluster.status().raft.appliedIndex
  }
}

async function main (): Promise<void> {
  // Exit with the parent that spawned us, never outlive it.
  process.on('disconnect', () => process.exit(0))
  const config = JSON.parse(process.argv[2] ?? '') as NodeConfig
  const logger = config.logLevel === undefined ? undefined : pino({ level: config.logLevel, base: { node: config.nodeId } }, pino.destination(2))
  report({ type: 'cluster-starting' })
  const cluster = await Cluster.start({
    name: config.name,
    secret: process.env.RAFTMESH_SECRET,
    dataDir: config.dataDir,
    nodeId: config.nodeId,
    listen: [config.listen],
    bootstrap: [...config.bootstrap],
    expect: config.expect,
    sessionTtlMs: config.sessionTtlMs,
    panicAfterMs: config.panicAfterMs,
    tickMs: config.tickMs,
    electionTicks: config.electionTicks,
    logger,
    // 'report': the node stays up, as a server that installs its own handler would.
    onPanic: config.onPanic === 'report' ? () => {} : undefined
  })
  cluster.on('panic', info => { report({ type: 'panic', reason: info.reason, sinceMs: info.sinceMs }) })
  cluster.on('leader', l => { report({ type: 'leader', leader: l.leader, term: l.term }) })
  cluster.on('member-up', m => { report({ type: 'member-up', id: m.id }) })
  cluster.on('member-down', m => { report({ type: 'member-down', id: m.id, reason: m.reason }) })
  report({ type: 'cluster-joined' })
  cluster.mesh.libp2p.services.pubsub.addEventListener('subscription-change', evt => {
    if (evt.detail.subscriptions.some(s => s.subscribe)) report({ type: 'gossip-subscribed', peerId: evt.detail.peerId.toString() })
  })

  let workloads = new AbortController()
  const running = new Set<Promise<void>>()
  let nextWorkload = 0
  const begin = (loop: (id: string, stop: AbortSignal) => Promise<void>): string => {
    const id = `w${++nextWorkload}`
    const run = loop(id, workloads.signal).catch((err: unknown) => {
      report({ type: 'error', op: `workload ${id}`, ...errorText(err) })
    })
    running.add(run)
    void run.finally(() => running.delete(run))
    return id
  }
  const serve = async (req: Request): Promise<unknown> => {
    switch (req.op) {
      case 'workload':
        return begin(async (id, stop) => { await runWorkload(cluster, id, req.workload, stop) })
      case 'produce':
        return begin(async (id, stop) => { await runProducer(cluster, id, req.workload, stop) })
      case 'process':
        return begin(async (id, stop) => { await runProcessor(cluster, id, req.workload, stop) })
      case 'queue-state':
        return await queueState(cluster, req.queue)
      case 'schedule':
        return begin(async (id, stop) => { await runSchedule(cluster, id, req.workload, stop) })
      case 'cache':
        return begin(async (id, stop) => { await runCacheWorkload(cluster, id, req.workload, stop, report) })
      case 'cache-contents':
        return cacheContents(cluster, req.cache)
      case 'events':
        return begin(async (id, stop) => { await runEventWorkload(cluster, id, req.workload, stop, report) })
      case 'partition': {
        const mesh = cluster.mesh
        mesh.gate.deny(req.deny)
        await Promise.all(req.deny.map(async p => { await mesh.libp2p.hangUp(peerIdFromString(p)).catch(() => {}) }))
        return null
      }
      case 'heal':
        cluster.mesh.gate.allowAll()
        cluster.mesh.redialNow()
        return null
      case 'touch-jobs':
        return [...heldJobs].filter(h => h.act()).length
      case 'stop-workloads':
        workloads.abort()
        await Promise.all(running)
        workloads = new AbortController()
        return null
      case 'cycle':
        return await runCycles(cluster, req.loop)
      case 'status':
        return cluster.status()
      case 'stop':
        workloads.abort()
        await Promise.all(running)
        await cluster.stop()
        setImmediate(() => process.exit(0))
        return null
    }
  }
  process.on('message', (req: Request) => {
    serve(req).then(value => { send({ kind: 'reply', id: req.id, ok: true, value }) }, (err: unknown) => {
      send({ kind: 'reply', id: req.id, ok: false, error: errorText(err).message })
    })
  })
  process.stdout.write(JSON.stringify({ event: 'ready', id: cluster.id, peerId: cluster.mesh.peerId, addrs: cluster.addresses }) + '\n')
}

main().catch(err => {
  process.stderr.write(`cluster-node: ${errorText(err).message}\n`)
  process.exit(2)
})
