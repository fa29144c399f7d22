/**
 * The live dashboard at `/cluster/`: one page with its style and script
 * inline, so that it works with no build step, no external assets and a
 * strict Content-Security-Policy (the page may run only its own script,
 * pinned by hash, and talk only to the node that served it). Everything
 * from the status is inserted as text, never as HTML.
 */
import { createHash } from 'node:crypto'

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f4f6f8; }
header { display: flex; gap: 1rem; align-items: center; padding: .6rem 1rem; background: #1d2430; color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; }
#conn { margin-left: auto; padding: .1rem .5rem; border-radius: 1rem; background: #8a6d00; }
#conn.live { background: #1f7a3a; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1rem; padding: 1rem; }
section { background: #fff; border-radius: 6px; padding: .6rem 1rem; box-shadow: 0 1px 2px #0002; }
section h2 { font-size: 1rem; margin: .2rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .15rem .4rem; border-bottom: 1px solid #e4e8ec; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.role-leader { font-weight: 600; color: #1f5fa8; }
.state-failed, .state-left, .bad { color: #a11; }
#panic { display: none; background: #a11; color: #fff; padding: .6rem 1rem; font-weight: 600; }
#panic.on { display: block; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: 0; }
.facts dt { color: #5b6573; }
.facts dd { margin: 0; }
#timeline { list-style: none; padding: 0; margin: 0; max-height: 24rem; overflow: auto; }
#timeline li { padding: .1rem 0; border-bottom: 1px solid #eef1f4; }
#timeline time { color: #5b6573; margin-right: .5rem; font-variant-numeric: tabular-nums; }
.empty { color: #5b6573; font-style: italic; }
`

const SCRIPT = `
'use strict'
const $ = id => document.getElementById(id)
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v)
  for (const k of kids) e.append(k instanceof Node ? k : String(k ?? ''))
  return e
}
const ago = (now, t) => t === null || t === undefined ? '' : Math.max(0, Math.round((now - t) / 1000)) + ' s ago'
const clock = t => new Date(t).toLocaleTimeString()

function table (id, heads, rows) {
  const head = el('tr', {}, ...heads.map(([h, cls]) => el('th', cls ? { class: cls } : {}, h)))
  const none = el('tr', {}, el('td', { class: 'empty', colspan: String(heads.length) }, 'none'))
  $(id).replaceChildren(head, ...(rows.length === 0 ? [none] : rows))
}
function row (attrs, cells) {
  return el('tr', attrs, ...cells.map(c => Array.isArray(c) ? el('td', { class: c[1] }, c[0]) : el('td', {}, c)))
}

// Sections shown only when their service is in use on this node: queues,
// scheduled tasks, caches and events.
const dur = ms => ms === null || ms === undefined ? '' : ms < 1000 ? Math.round(ms) + ' ms' : (ms / 1000).toFixed(1) + ' s'
const at = t => t === null || t === undefined ? '' : clock(t)
/** A count shown in red when above zero. */
const bad = n => [n, n > 0 ? 'bad' : '']
const SECTIONS = {
  queues: {
    cols: ['queue', 'depth', 'ready', 'delayed', 'in flight', 'waiting', 'dead', 'acked', 'oldest'],
    row: q => [q.name, q.depth, q.ready, q.delayed, q.inFlight, q.waiting, bad(q.deadLetters), q.acked, dur(q.oldestAgeMs)]
  },
  schedules: {
    cols: ['task', 'nodes', 'running on', 'last run', 'last outcome', 'took', 'next run', 'runs', 'skipped', 'missed'],
    row: x => [
      [x.task + (x.conflict ? ' (definitions differ)' : ''), x.conflict ? 'bad' : ''],
      x.nodes.join(', '),
      x.running === null ? '' : x.running.node + ' (fence ' + x.running.fence + ')',
      x.lastRun === null ? '' : x.lastRun.node + ' at ' + at(x.lastRun.scheduledAt),
      x.lastRun === null ? '' : [x.lastRun.outcome + (x.lastRun.error ? ': ' + x.lastRun.error : ''), x.lastRun.outcome === 'ok' ? '' : 'bad'],
      x.lastRun === null ? '' : dur(x.lastRun.durationMs),
      at(x.nextRunAt), x.runs, x.skipped, x.missed
    ]
  },
  caches: {
    cols: ['cache', 'mode', 'entries', 'hits', 'misses', 'updates sent', 'received', 'repaired', 'syncs', 'gaps', 'dropped all'],
    row: c => [c.name, c.mode, c.entries, c.hits, c.misses, c.updatesSent, c.updatesReceived, c.repaired, c.syncs + (c.syncFailures > 0 ? ' (' + c.syncFailures + ' failed)' : ''), bad(c.gaps), bad(c.droppedAll)]
  },
  events: {
    cols: ['publishers', 'published', 'received', 'duplicates', 'repaired', 'lost', 'forged', 'overflowed', 'handler errors'],
    row: e => [e.publishers, e.published, e.received, e.duplicates, e.repaired, bad(e.lost), bad(e.forged + e.unknownPublisher + e.malformed), bad(e.overflowed), bad(e.handlerErrors)]
  }
}
function renderOptional (s) {
  const inUse = { queues: s.queues, schedules: s.schedules, caches: s.caches, events: s.events.published + s.events.received > 0 ? [s.events] : [] }
  for (const [key, items] of Object.entries(inUse)) {
    $(key).hidden = items.length === 0
    if (items.length > 0) table(key + '-table', SECTIONS[key].cols.map(c => [c]), items.map(i => row({}, SECTIONS[key].row(i))))
  }
}

function render (s) {
  const r = s.raft
  $('node').textContent = s.id
  $('leader').textContent = r.leader === null ? 'none' : r.leader
  $('term').textContent = r.term
  $('role').textContent = r.role
  $('commit').textContent = r.commitIndex
  $('applied').textContent = r.appliedIndex
  $('apply-lag').textContent = r.commitIndex - r.appliedIndex
  $('quorum').textContent = r.quorum + ' of ' + r.voters.length + ' voters (tolerates ' + r.failureTolerance + ' failures)'
  $('session').textContent = s.session.id === null ? 'none' : s.session.id + ' (lease ' + s.session.leaseRemainingMs + ' ms)'
  $('panic').classList.toggle('on', s.panic !== null)
  $('panic').textContent = s.panic === null ? '' : 'Quorum-loss panic since ' + clock(s.panic.at) + ': ' + s.panic.reason
  table('members', [['node'], ['role'], ['state'], ['membership'], ['last seen'], ['match', 'num'], ['lag', 'num']], s.members.map(m => row(
    { 'data-member': m.id, 'data-role': m.role, 'data-state': m.state, title: m.failure ?? '', class: 'role-' + m.role + ' state-' + m.state },
    [m.id, m.role, m.state, m.voter ? 'voter' : m.learner ? 'learner' : '-', m.state === 'self' ? '' : ago(s.time, m.lastSeen), [m.matchIndex ?? '', 'num'], [m.lag ?? '', 'num']])))
  $('lag-note').hidden = r.role === 'leader'
  table('locks', [['kind'], ['name'], ['holder'], ['fence', 'num'], ['held for'], ['waiters', 'num']], s.locks.map(l => row(
    { 'data-lock': l.name },
    [l.kind, l.name, l.holder === null ? 'free' : (l.holder.node ?? l.holder.session), [l.holder === null ? '' : l.holder.fence, 'num'], l.holder === null ? '' : ago(s.time, l.holder.grantedAt), [l.waiters, 'num']])))
  table('sessions', [['session'], ['node'], ['ttl', 'num'], ['opened']], s.sessions.map(x => row(
    { 'data-session': x.id }, [x.id, x.node, [x.ttlMs + ' ms', 'num'], ago(s.time, x.openedAt)])))
  renderOptional(s)
}

const DESCRIBE = {
  'leader': e => e.leader === null ? 'no leader (term ' + e.term + ')' : e.leader + ' leads term ' + e.term,
  'member-up': e => e.member + ' is up',
  'member-down': e => e.member + (e.reason === 'left' ? ' left' : ' failed'),
  'panic': e => 'quorum-loss panic: ' + e.reason,
  'lock-granted': e => e.lockKind + ' ' + e.name + ' granted to ' + (e.node ?? '?') + ' (fence ' + e.fence + ')',
  'session-ended': e => 'session of ' + e.node + ' ended: ' + e.reason
}
const MAX_TIMELINE = 200
let epoch = null
function addTimeline (e, id) {
  const ep = id.split('.')[0]
  if (ep !== epoch) { epoch = ep; $('timeline').replaceChildren() }
  const describe = DESCRIBE[e.kind] || (() => e.kind)
  const li = el('li', { 'data-kind': e.kind }, describe(e))
  li.prepend(el('time', {}, clock(e.at)))
  $('timeline').prepend(li)
  while ($('timeline').childElementCount > MAX_TIMELINE) $('timeline').lastChild.remove()
}

function connect () {
  const es = new EventSource('events')
  es.onopen = () => { $('conn').textContent = 'live'; $('conn').className = 'live' }
  es.addEventListener('status', m => render(JSON.parse(m.data)))
  es.addEventListener('timeline', m => addTimeline(JSON.parse(m.data), m.lastEventId))
  es.onerror = () => {
    $('conn').textContent = 'reconnecting'
    $('conn').className = ''
    // The browser retries by itself unless the server refused (a 503 when too many pages are open, a 401):
    // then try again later with a new stream.
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 5000)
  }
}
connect()
`

const BODY = `
<header><h1>raftmesh</h1><span>node <b id="node">…</b></span><span id="conn">connecting</span></header>
<div id="panic" role="alert"></div>
<main>
<section><h2>Raft</h2><dl class="facts">
<dt>leader</dt><dd id="leader">…</dd><dt>term</dt><dd id="term"></dd><dt>this node</dt><dd id="role"></dd>
<dt>commit index</dt><dd id="commit"></dd><dt>applied index</dt><dd id="applied"></dd><dt>apply lag</dt><dd id="apply-lag"></dd>
<dt>quorum</dt><dd id="quorum"></dd><dt>session</dt><dd id="session"></dd></dl></section>
<section><h2>Members</h2><table id="members"></table>
<p id="lag-note" class="empty">Match index and lag are known on the leader only: open the leader's dashboard for them.</p></section>
<section><h2>Locks</h2><table id="locks"></table></section>
<section><h2>Sessions</h2><table id="sessions"></table></section>
<section id="queues" hidden><h2>Queues</h2><table id="queues-table"></table></section>
<section id="schedules" hidden><h2>Scheduled tasks</h2><table id="schedules-table"></table></section>
<section id="caches" hidden><h2>Caches</h2><table id="caches-table"></table></section>
<section id="events" hidden><h2>Events</h2><table id="events-table"></table></section>
<section><h2>Timeline</h2><ol id="timeline"></ol></section>
</main>
`

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>raftmesh cluster</title><style>${STYLE}</style></head>
<body>${BODY}<script>${SCRIPT}</script></body></html>
`

const hash = (s: string): string => `'sha256-${createHash('sha256').update(s).digest('base64')}'`

export const DASHBOARD_CSP = `default-src 'none'; script-src ${hash(SCRIPT)}; style-src ${hash(STYLE)}; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`
