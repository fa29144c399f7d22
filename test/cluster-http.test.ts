import t from 'tap'
import { FaultInjector } from '../gossip/fault.js'
import type { ClusterStatus, TimelineEntry } from '../lib/index.js'
import { eventually, startClusters } from './helpers/clusters.js'
import { parsePrometheus, readEvents, sampleValue, serve, type SseEvent, type TestServer } from './helpers/http-server.js'

/** Polls an asynchronous check until it passes; rejects after `ms`. */
async function until (check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!await check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

const get = async (url: string, init: RequestInit = {}): Promise<{ status: number, headers: Headers, body: any }> => {
  const res = await fetch(url, init)
  const text = await res.text()
  return { status: res.status, headers: res.headers, body: (res.headers.get('content-type') ?? '').startsWith('application/json') ? JSON.parse(text) : text }
}

t.test('a three-node cluster served over node:http: status, metrics, probes, refusals, and a leader change as it happens', async t => {
  const c = await startClusters(3)
  const servers: TestServer[] = []
  t.teardown(async () => {
    for (const s of servers) await s.close()
    await c.stopAll()
  })
  const urls: string[] = []
  for (const n of c.nodes) {
    const s = await serve(n.httpHandler())
    servers.push(s)
    urls.push(s.url)
  }
  const leader = c.leader()
  const li = c.nodes.indexOf(leader)
  const fi = (li + 1) % 3
  const follower = c.nodes[fi]

  const held = await follower.lock('reports').acquire()
  await eventually(() => leader.lock('reports').holder() !== null, 15_000, 'the grant to be applied on the leader')

  await t.test('status is the JSON of cluster.status(), with each member\'s role', async t => {
    const r = await get(`${urls[li]}/cluster/status`)
    t.equal(r.status, 200)
    t.equal(r.headers.get('cache-control'), 'no-store')
    const s = r.body as ClusterStatus
    t.equal(s.id, leader.id)
    t.same(s.members.map(m => m.id), ['n1', 'n2', 'n3'])
    t.same(s.members.filter(m => m.role === 'leader').map(m => m.id), [leader.id], 'one leader, this node')
    t.equal(s.members.filter(m => m.role === 'follower').length, 2)
    t.ok(s.members.every(m => m.lag !== null), 'the leader knows every member\'s lag')
    const lock = s.locks.find(l => l.name === 'reports')
    t.same(lock?.holder?.node, follower.id, 'the lock shows its holder')
    t.equal(lock?.holder?.fence, String(held.fence), 'and its fence')
    t.ok(s.time > 0)
  })

  await t.test('status carries each open cache\'s traffic and the node\'s events', async t => {
    const mine = leader.cache<string, string>('settings', { mode: 'replicated' })
    const theirs = follower.cache<string, string>('settings', { mode: 'replicated' })
    leader.events.subscribe('report.*', () => {})
    await theirs.set('locale', 'en')
    await follower.events.publish('report.done', { id: 1 })
    await eventually(() => mine.get('locale') === 'en' && leader.events.stats().received > 0, 15_000, 'the write and the event on the leader')
    const s = (await get(`${urls[li]}/cluster/status`)).body as ClusterStatus
    t.match(s.caches, [{ name: 'settings', mode: 'replicated', entries: 1, updatesSent: 0 }])
    t.equal(s.caches[0].updatesReceived + s.caches[0].repaired, 1, 'the leader took in the follower\'s write, by gossip or by anti-entropy')
    t.match(s.events, { published: 0, received: 1, lost: 0 })
    const f = (await get(`${urls[fi]}/cluster/status`)).body as ClusterStatus
    t.match(f.caches, [{ name: 'settings', updatesSent: 1 }], 'the follower sent it')
    t.equal(f.events.published, 1)
  })

  await t.test('metrics are Prometheus text from this node\'s own registry', async t => {
    const r = await get(`${urls[fi]}/cluster/metrics`)
    t.equal(r.status, 200)
    t.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
    const { samples, types } = parsePrometheus(r.body)
    t.ok(samples.every(s => s.name.startsWith('raftmesh_')), 'only raftmesh series: not the global registry\'s')
    t.ok(samples.every(s => s.labels.node === follower.id), 'every series names its node')
    const st = follower.raftStatus()
    t.equal(sampleValue(samples, 'raftmesh_raft_term'), st.term)
    t.ok(sampleValue(samples, 'raftmesh_raft_applied_index') >= held.fence, 'applied at least up to the grant')
    t.equal(sampleValue(samples, 'raftmesh_raft_role', { role: 'follower' }), 1)
    t.equal(sampleValue(samples, 'raftmesh_raft_role', { role: 'leader' }), 0)
    t.equal(sampleValue(samples, 'raftmesh_raft_has_leader'), 1)
    t.equal(sampleValue(samples, 'raftmesh_raft_voters'), 3)
    t.equal(sampleValue(samples, 'raftmesh_members', { state: 'alive' }), 2)
    t.equal(sampleValue(samples, 'raftmesh_sessions'), 3)
    t.equal(sampleValue(samples, 'raftmesh_locks_held', { kind: 'lock' }), 1)
    t.equal(sampleValue(samples, 'raftmesh_panic'), 0)
    t.equal(sampleValue(samples, 'raftmesh_lock_acquire_seconds_count', { outcome: 'acquired' }), 1, 'this node\'s one acquire was timed')
    t.equal(types.get('raftmesh_lock_acquire_seconds'), 'histogram')
    t.equal(types.get('raftmesh_raft_messages_received_total'), 'counter')
    t.ok(sampleValue(samples, 'raftmesh_raft_messages_received_total') > 0, 'Raft traffic is counted')
    t.ok(sampleValue(samples, 'raftmesh_lock_grants_total') >= 1)

    const onLeader = parsePrometheus((await get(`${urls[li]}/cluster/metrics`)).body).samples
    t.equal(sampleValue(onLeader, 'raftmesh_raft_role', { role: 'leader' }), 1)
    t.equal(onLeader.filter(s => s.name === 'raftmesh_raft_follower_lag_entries').length, 2, 'the leader reports each follower\'s lag')
    t.equal(onLeader.filter(s => s.name === 'raftmesh_lock_acquire_seconds_count').length, 0, 'the leader timed no acquire of its own')
  })

  await t.test('probes answer 200 on a healthy node', async t => {
    for (const p of ['alive', 'started', 'ready']) {
      const r = await get(`${urls[fi]}/health/${p}`)
      t.same([r.status, r.body], [200, { status: 'UP' }], p)
    }
  })

  await t.test('a bearer token is required when set; other paths and methods are refused', async t => {
    t.throws(() => follower.httpHandler({ token: 'open sesame' }), { name: 'InvalidArgumentError' }, 'a token that cannot be sent as one bearer credential is refused up front')
    const s = await serve(follower.httpHandler({ token: 'open-sesame' }))
    servers.push(s)
    const noHeader = await get(`${s.url}/cluster/status`)
    t.equal(noHeader.status, 401)
    t.equal(noHeader.headers.get('www-authenticate'), 'Bearer')
    t.equal((await get(`${s.url}/cluster/status`, { headers: { authorization: 'Bearer open-sesamE' } })).status, 401, 'a wrong token')
    t.equal((await get(`${s.url}/cluster/status`, { headers: { authorization: 'Bearer open' } })).status, 401, 'a prefix of the token')
    t.equal((await get(`${s.url}/cluster/status`, { headers: { authorization: 'Bearer open-sesame-and-more' } })).status, 401, 'a longer one')
    t.equal((await get(`${s.url}/health/alive`, { headers: { authorization: 'Basic b3Blbi1zZXNhbWU=' } })).status, 401, 'another scheme, probes included')
    t.equal((await get(`${s.url}/cluster/status`, { headers: { authorization: 'Bearer open-sesame' } })).status, 200, 'the right token')
    t.equal((await get(`${s.url}/cluster/metrics`, { headers: { authorization: 'bearer  open-sesame' } })).status, 200, 'the scheme is case-insensitive')

    const s2 = await serve(follower.httpHandler({ token: 'open-sesame', publicHealth: true }))
    servers.push(s2)
    t.equal((await get(`${s2.url}/cluster/metrics`)).status, 401)
    t.equal((await get(`${s2.url}/health/ready`)).status, 200, 'publicHealth lets probes through without it')

    t.same((await get(`${urls[fi]}/cluster/nope`)).status, 404)
    t.same((await get(`${urls[fi]}/`)).status, 404)
    const post = await get(`${urls[fi]}/cluster/status`, { method: 'POST', body: '{}' })
    t.equal(post.status, 405)
    t.equal(post.headers.get('allow'), 'GET')
    const moved = await fetch(`${urls[fi]}/cluster`, { redirect: 'manual' })
    t.equal(moved.status, 308)
    t.equal(moved.headers.get('location'), '/cluster/')
    const page = await get(`${urls[fi]}/cluster/`)
    t.equal(page.status, 200)
    t.match(page.headers.get('content-security-policy'), /default-src 'none'; script-src 'sha256-/)
    t.match(page.body, /<title>raftmesh cluster<\/title>/)
  })

  await t.test('with next (Connect/Express), paths it does not serve go on to the rest of the app', async t => {
    const h = follower.httpHandler()
    let passed = 0
    const s = await serve((req, res) => { h(req, res, () => { passed++; res.end('app') }) })
    servers.push(s)
    t.equal((await get(`${s.url}/patients`)).body, 'app')
    t.equal((await get(`${s.url}/health/alive`)).status, 200)
    t.equal(passed, 1)
  })

  await t.test('event streams are bounded: one too many gets 503, and a closed one frees its place', async t => {
    const s = await serve(follower.httpHandler({ maxEventStreams: 1 }))
    servers.push(s)
    const first = new AbortController()
    const r1 = await fetch(`${s.url}/cluster/events`, { signal: first.signal })
    t.equal(r1.status, 200)
    t.match(r1.headers.get('content-type'), /^text\/event-stream/)
    const refused = await get(`${s.url}/cluster/events`)
    t.equal(refused.status, 503)
    t.match(refused.body, { error: /too many event streams open \(at most 1\)/ })
    first.abort()
    let again: Response | null = null
    await until(async () => {
      again = await fetch(`${s.url}/cluster/events`)
      if (again.status === 200) return true
      await again.text()
      return false
    }, 10_000, 'the aborted stream to free its place')
    t.pass('the aborted stream was removed')
    await (again as Response | null)?.body?.cancel()
  })

  await t.test('a follower cut off from the others turns unready, then panics and is no longer alive; healed, it is ready again', async t => {
    const faults = new FaultInjector(c.nodes.map(n => n.mesh))
    const other = c.nodes[(li + 2) % 3]
    const url = urls[(li + 2) % 3]
    await faults.isolate(other.mesh)
    let ready = await get(`${url}/health/ready`)
    await until(async () => (ready = await get(`${url}/health/ready`)).status !== 200, 20_000, 'the cut-off node to turn unready')
    t.equal(ready.status, 503, 'not ready once it has lost the leader')
    t.match(ready.body, { status: 'DOWN', reason: /no known leader|panic/ })
    await eventually(() => other.status().panic !== null, 20_000, 'the cut-off node to panic')
    const alive = await get(`${url}/health/alive`)
    t.same([alive.status, alive.body.status], [503, 'DOWN'])
    t.match(alive.body.reason, /quorum-loss panic/)
    const down = other.status().members.filter(m => m.state === 'failed')
    t.ok(down.length > 0 && down.every(m => typeof m.failure === 'string' && m.failure !== ''), `its peers are failed, each with why: ${JSON.stringify(down.map(m => m.failure))}`)
    t.ok(other.status().members.every(m => m.state === 'failed' || m.failure === null), 'only failed members carry a failure')
    faults.heal()
    await until(async () => (await get(`${url}/health/ready`)).status === 200, 30_000, 'the healed node to be ready again')
    t.equal((await get(`${url}/health/alive`)).status, 200, 'and alive')
  })

  await t.test('an event stream delivers a status snapshot, then the new leader when the old one stops', async t => {
    const events: SseEvent[] = []
    const ac = new AbortController()
    const old = c.leader()
    const wi = c.nodes.findIndex(n => n !== old)
    const watcher = c.nodes[wi]
    const res = await fetch(`${urls[wi]}/cluster/events`, { signal: ac.signal })
    const reading = readEvents(res, e => { events.push(e) })
    await eventually(() => events.some(e => e.event === 'status'), 10_000, 'a status snapshot')
    t.equal(events[0].event, 'status', 'the first event is the snapshot')
    t.equal((JSON.parse(events[0].data) as ClusterStatus).id, watcher.id)
    t.ok(events.some(e => e.event === 'timeline' && (JSON.parse(e.data) as TimelineEntry).kind === 'leader'), 'the timeline so far came with it')

    const seen = events.length
    await old.stop()
    const leaderEntry = (): TimelineEntry | undefined => events.slice(seen)
      .filter(e => e.event === 'timeline').map(e => JSON.parse(e.data) as TimelineEntry)
      .find(e => e.kind === 'leader' && e.leader !== null && e.leader !== old.id)
    await eventually(() => leaderEntry() !== undefined, 20_000, 'a leader-change event naming a new leader')
    const entry = leaderEntry()
    t.ok(entry !== undefined && entry.kind === 'leader' && c.nodes.some(n => n !== old && n.id === entry.leader), 'the new leader is one of the others')
    t.match(events.filter(e => e.event === 'timeline').map(e => e.id).at(-1), /^\w+\.\d+$/, 'timeline events carry an id to resume from')

    const stopped = await get(`${urls[c.nodes.indexOf(old)]}/health/ready`)
    t.same([stopped.status, stopped.body.reason], [503, 'the cluster node is stopped'], 'the stopped node is not ready')
    t.equal((await get(`${urls[c.nodes.indexOf(old)]}/cluster/events`)).status, 503, 'nor serves event streams')
    ac.abort()
    await reading
  })
})
