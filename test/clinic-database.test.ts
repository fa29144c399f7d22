/**
 * The clinic server's two database backends give the same guarantees: an
 * admission is imported once per control id (also when two nodes import it
 * at the same moment), a write with a fence at or below one already
 * accepted is refused, a write whose claim lapsed before the commit leaves
 * nothing behind, and purge runs are recorded once per fence.
 * PostgreSQL runs in a private server from Debian's binaries, or skips.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { openClinicDb, StaleWriteError, type ClinicDb } from '../examples/clinic-server/database.js'
import type { Admission } from '../examples/clinic-server/hl7.js'
import { postgresBin, startPostgres } from './helpers/postgres.js'

const admission = (controlId: string, identifier = `ID-${controlId}`): Admission => ({ controlId, identifier, name: 'Joseph Kamau', birthdate: '1975-11-30' })
const valid = (): boolean => true

/** Two handles on one database, as two nodes have. */
type Open = () => Promise<ClinicDb>

function backendTests (t: Test, open: Open): void {
  t.test('an admission is imported once, and the attempts are recorded with their fences', async t => {
    const db = await open()
    t.teardown(async () => { await db.close() })
    const first = await db.importAdmission(admission('M1'), 10n, 'n1', valid)
    t.equal(first.outcome, 'imported')
    const again = await db.importAdmission(admission('M1'), 11n, 'n2', valid)
    t.equal(again.outcome, 'duplicate')
    t.equal(again.patient?.id, first.patient?.id, 'the duplicate names the imported patient')
    t.equal((await db.encounters(first.patient?.id ?? -1)).length, 1, 'one admission encounter')
    t.match(await db.hl7Attempts(), [{ controlId: 'M1', fence: '10', node: 'n1', outcome: 'imported' }, { controlId: 'M1', fence: '11', node: 'n2', outcome: 'duplicate' }])
  })

  t.test('a stale fence is refused and changes nothing', async t => {
    const db = await open()
    t.teardown(async () => { await db.close() })
    await db.importAdmission(admission('M2'), 20n, 'n1', valid)
    const stale = await db.importAdmission(admission('M2'), 19n, 'n2', valid)
    t.equal(stale.outcome, 'stale')
    t.equal((await db.hl7Attempts()).filter(a => a.controlId === 'M2' && a.outcome === 'stale').length, 1)
    const sameFence = await db.importAdmission(admission('M2'), 20n, 'n3', valid)
    t.equal(sameFence.outcome, 'stale', 'a fence already used is stale too')
  })

  t.test('an import whose claim lapsed before the commit leaves nothing, and the retry imports', async t => {
    const db = await open()
    t.teardown(async () => { await db.close() })
    const before = (await db.allPatients()).length
    await t.rejects(db.importAdmission(admission('M3'), 30n, 'n1', () => false), StaleWriteError)
    t.equal((await db.allPatients()).length, before, 'no patient was written')
    t.equal((await db.hl7Attempts()).filter(a => a.controlId === 'M3').length, 0, 'no attempt was recorded')
    t.equal((await db.importAdmission(admission('M3'), 31n, 'n2', valid)).outcome, 'imported')
  })

  t.test('a second message for a known identifier merges into that patient', async t => {
    const db = await open()
    t.teardown(async () => { await db.close() })
    const a = await db.importAdmission(admission('M4', 'PAT-4'), 40n, 'n1', valid)
    const b = await db.importAdmission(admission('M5', 'PAT-4'), 41n, 'n2', valid)
    t.equal(b.outcome, 'merged')
    t.equal(b.patient?.id, a.patient?.id)
    t.same((await db.encounters(a.patient?.id ?? -1)).map(e => e.source), ['hl7:M4', 'hl7:M5'])
  })

  t.test('two nodes importing one message at once: one imports, the other finds it done', async t => {
    const [x, y] = [await open(), await open()]
    t.teardown(async () => { await x.close(); await y.close() })
    for (let i = 0; i < 10; i++) {
      const outcomes = await Promise.all([x.importAdmission(admission(`C${i}`), BigInt(100 + 2 * i), 'n1', valid), y.importAdmission(admission(`C${i}`), BigInt(101 + 2 * i), 'n2', valid)])
      const imported = outcomes.filter(o => o.outcome === 'imported')
      t.equal(imported.length, 1, `C${i}: imported once (${outcomes.map(o => o.outcome).join(', ')})`)
      t.equal(outcomes.filter(o => o.outcome === 'duplicate' || o.outcome === 'stale').length, 1, `C${i}: the other attempt changed nothing`)
      t.equal((await x.encounters(imported[0].patient?.id ?? -1)).length, 1, `C${i}: one encounter`)
    }
  })

  t.test('attempts on one message are serialised: the fences it accepts increase in the order it recorded them', async t => {
    const [x, y] = [await open(), await open()]
    t.teardown(async () => { await x.close(); await y.close() })
    await x.importAdmission(admission('S1'), 200n, 'n1', valid)
    for (let i = 1; i <= 10; i++) {
      // The higher fence is sent first: a backend that lets both read the same highest fence accepts both, out of order.
      await Promise.all([x.importAdmission(admission('S1'), BigInt(200 + 2 * i + 1), 'n1', valid), y.importAdmission(admission('S1'), BigInt(200 + 2 * i), 'n2', valid)])
    }
    const accepted = (await x.hl7Attempts()).filter(a => a.controlId === 'S1' && a.outcome !== 'stale').map(a => BigInt(a.fence))
    t.ok(accepted.every((f, i) => i === 0 || f > accepted[i - 1]), `accepted fences in order: ${accepted.join(', ')}`)
  })

  t.test('purge runs are recorded once per fence and a stale run is refused', async t => {
    const db = await open()
    t.teardown(async () => { await db.close() })
    const old = await db.importAdmission(admission('P1'), 50n, 'n1', valid)
    // The earlier subtests' encounters share the database and go too.
    const removed = await db.purgeEncounters(Date.now() + 1000, 'purge', 60n, 'n1', 1000, valid)
    t.ok(removed >= 1, `${removed} encounters purged`)
    await t.rejects(db.purgeEncounters(Date.now(), 'purge', 59n, 'n2', 999, valid), StaleWriteError)
    await t.rejects(db.purgeEncounters(Date.now(), 'purge', 61n, 'n2', 2000, () => false), StaleWriteError)
    t.same(await db.taskRuns('purge'), [{ fence: '60', node: 'n1', scheduledAt: 1000, removed }])
    t.same(await db.encounters(old.patient?.id ?? -1), [])
  })
}

t.test('sqlite', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'raftmesh-clinic-db-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  backendTests(t, async () => await openClinicDb({ file: join(dir, 'clinic.db') }))
})

const bin = postgresBin()
t.test('postgresql', { skip: bin === null ? 'PostgreSQL is not installed (apt-get install postgresql): its backend is untested here' : false }, async t => {
  const pg = await startPostgres(bin as string)
  t.teardown(pg.stop)
  backendTests(t, async () => await openClinicDb({ url: pg.url }))
})
