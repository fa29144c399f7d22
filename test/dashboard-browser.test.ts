import { existsSync } from 'node:fs'
import t from 'tap'
import { eventually, startClusters } from './helpers/clusters.js'
import { serve } from './helpers/http-server.js'

const CHROMIUM = '/usr/bin/chromium'

t.test('the dashboard in a real browser: three members and one leader, then the new leader after the old one stops', {
  skip: existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}: apt-get install chromium to run the dashboard's browser test`
}, async t => {
  const { chromium } = await import('playwright-core')
  const c = await startClusters(3)
  const old = c.leader()
  // The page is served by a node that survives the leader's stop.
  const viewer = c.nodes.find(n => n !== old) as typeof old
  const server = await serve(viewer.httpHandler())
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  t.teardown(async () => {
    await browser.close()
    await server.close()
    await c.stopAll()
  })
  const page = await browser.newPage()
  const problems: string[] = []
  page.on('pageerror', err => { problems.push(`page error: ${err.message}`) })
  page.on('console', m => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`) })
  await page.goto(`${server.url}/cluster/`)

  const members = page.locator('#members tr[data-member]')
  const leaderRows = page.locator('#members tr[data-role="leader"]')
  await members.nth(2).waitFor()
  t.equal(await members.count(), 3, 'three members')
  await leaderRows.first().waitFor()
  t.equal(await leaderRows.count(), 1, 'one leader')
  t.equal(await leaderRows.getAttribute('data-member'), old.id, 'the cluster\'s leader')
  t.equal(await page.locator('#leader').textContent(), old.id)
  t.equal(await page.locator('#conn').textContent(), 'live', 'the event stream is open')
  t.equal(await page.locator('#queues').isVisible(), false, 'sections of services not in use stay hidden')
  await viewer.queue('hl7-in').enqueue({ msh: 'ADT^A01' })
  for (const n of c.nodes) n.schedule('nightly-report', { every: '1s' }, async () => {})
  await page.locator('#queues-table td', { hasText: 'hl7-in' }).waitFor()
  t.pass('the queue appears once it has an item')
  await page.locator('#schedules-table td', { hasText: 'nightly-report' }).waitFor()
  await page.locator('#schedules-table td', { hasText: /^n\d at / }).first().waitFor({ timeout: 20_000 })
  t.pass('the scheduled task appears with the node of its last run')
  t.equal(await page.locator('#caches').isVisible(), false, 'no cache open yet')
  t.equal(await page.locator('#events').isVisible(), false, 'no event sent or received yet')
  const writer = c.nodes.find(n => n !== viewer) as typeof old
  const seen = viewer.cache<string, number>('settings', { mode: 'replicated' })
  const written = writer.cache<string, number>('settings', { mode: 'replicated' })
  viewer.events.subscribe('patient.*', () => {})
  await written.set('max-results', 50)
  await writer.events.publish('patient.saved', { id: 1 })
  await page.locator('#caches-table tr', { hasText: 'settings' }).locator('td', { hasText: /^1$/ }).first().waitFor({ timeout: 20_000 })
  t.equal(seen.get('max-results'), 50, 'the viewer holds the other node\'s write')
  t.pass('the cache appears with the update it received')
  await page.locator('#events-table td').first().waitFor({ timeout: 20_000 })
  t.pass('the events section appears once an event arrives')

  await old.stop()
  // The stopped node's Raft status still says leader: look among the others.
  const newLeader = (): typeof old | undefined => c.nodes.find(n => n !== old && n.raftStatus().role === 'leader')
  await eventually(() => newLeader() !== undefined, 20_000, 'a new leader')
  const next = newLeader() as typeof old
  await page.locator(`#members tr[data-role="leader"][data-member="${next.id}"]`).waitFor({ timeout: 20_000 })
  t.equal(await leaderRows.count(), 1, 'still one leader on the page')
  t.equal(await page.locator('#leader').textContent(), next.id, 'the new leader')
  const oldRow = page.locator(`#members tr[data-member="${old.id}"]`)
  t.equal(await oldRow.getAttribute('data-state'), 'left', `the old leader is shown as gone (a failure would say why: ${await oldRow.getAttribute('title') ?? ''})`)
  await page.locator('#timeline li[data-kind="leader"]', { hasText: `${next.id} leads` }).first().waitFor()
  t.pass('the timeline tells of the new leader')
  t.same(problems, [], 'no script errors (a blocked inline script would show here)')
})
