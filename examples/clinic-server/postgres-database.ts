/**
 * The clinic database in PostgreSQL (DATABASE_URL), through a small `pg`
 * pool per node. Transactions run at READ COMMITTED, so the fenced writes
 * serialise on rows: an import first inserts its message's row (ON CONFLICT
 * DO NOTHING: a second importer of the same message waits on the unique key
 * until the first commits) and then locks it with SELECT ... FOR UPDATE, and
 * a purge locks its task's row the same way. Whatever the first one
 * committed, the second then reads.
 */
import pg from 'pg'
import { isStale, StaleWriteError, type ClinicDb, type Encounter, type Hl7Attempt, type ImportOutcome, type ImportResult, type Patient, type TaskRun } from './database.js'
import type { Admission } from './hl7.js'

const PATIENT = 'SELECT id, identifier, name, birthdate, updated_at FROM patients'
// Any constant: it only keeps two nodes starting together from creating the tables at once.
const SCHEMA_LOCK = 14_001

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS patients (id SERIAL PRIMARY KEY, identifier TEXT, name TEXT NOT NULL, birthdate TEXT NOT NULL, updated_at BIGINT NOT NULL);
  CREATE INDEX IF NOT EXISTS patients_identifier ON patients (identifier);
  CREATE TABLE IF NOT EXISTS encounters (id SERIAL PRIMARY KEY, patient_id INTEGER NOT NULL REFERENCES patients(id), type TEXT NOT NULL, at BIGINT NOT NULL, source TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS hl7_messages (control_id TEXT PRIMARY KEY, patient_id INTEGER REFERENCES patients(id), fence BIGINT, node TEXT);
  CREATE TABLE IF NOT EXISTS hl7_attempts (seq BIGSERIAL PRIMARY KEY, control_id TEXT NOT NULL, fence BIGINT NOT NULL, node TEXT NOT NULL, outcome TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS tasks (task TEXT PRIMARY KEY);
  CREATE TABLE IF NOT EXISTS task_runs (task TEXT NOT NULL, fence BIGINT NOT NULL, node TEXT NOT NULL, scheduled_at BIGINT NOT NULL, removed INTEGER NOT NULL, PRIMARY KEY (task, fence));
`

interface PatientRow { id: number, identifier: string | null, name: string, birthdate: string, updated_at: string }
const patientOf = (r: PatientRow): Patient => ({ id: r.id, identifier: r.identifier, name: r.name, birthdate: r.birthdate, updatedAt: Number(r.updated_at) })
interface EncounterRow { id: number, patient_id: number, type: string, at: string, source: string }
const encounterOf = (r: EncounterRow): Encounter => ({ id: r.id, patientId: r.patient_id, type: r.type, at: Number(r.at), source: r.source })

type Queryable = pg.Pool | pg.PoolClient

export class PostgresClinicDb implements ClinicDb {
  readonly kind = 'postgres'

  private constructor (private readonly pool: pg.Pool) {}

  static async open (url: string): Promise<PostgresClinicDb> {
    const pool = new pg.Pool({ connectionString: url, max: 4 })
    // An idle client's connection error (the server restarted) must not crash the node; the next query reconnects.
    pool.on('error', () => {})
    const db = new PostgresClinicDb(pool)
    try {
      await db.transaction(async c => {
        await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK])
        await c.query(SCHEMA)
      })
    } catch (err) {
      await pool.end()
      throw new Error(`cannot open the PostgreSQL database: ${(err as Error).message}`)
    }
    return db
  }

  private async transaction<T> (fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect()
    try {
      await c.query('BEGIN')
      const v = await fn(c)
      await c.query('COMMIT')
      return v
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      c.release()
    }
  }

  private async patientIn (q: Queryable, id: number): Promise<Patient | null> {
    const { rows } = await q.query<PatientRow>(`${PATIENT} WHERE id = $1`, [id])
    return rows.length === 0 ? null : patientOf(rows[0])
  }

  private async addPatientIn (q: Queryable, name: string, birthdate: string, identifier: string | null): Promise<Patient> {
    const { rows } = await q.query<PatientRow>('INSERT INTO patients (identifier, name, birthdate, updated_at) VALUES ($1, $2, $3, $4) RETURNING *', [identifier, name, birthdate, Date.now()])
    return patientOf(rows[0])
  }

  private async addEncounterIn (q: Queryable, patientId: number, type: string, source: string): Promise<Encounter> {
    const { rows } = await q.query<EncounterRow>('INSERT INTO encounters (patient_id, type, at, source) VALUES ($1, $2, $3, $4) RETURNING *', [patientId, type, Date.now(), source])
    return encounterOf(rows[0])
  }

  async patient (id: number): Promise<Patient | null> { return await this.patientIn(this.pool, id) }

  async allPatients (): Promise<Patient[]> { return (await this.pool.query<PatientRow>(PATIENT)).rows.map(patientOf) }

  async addPatient (name: string, birthdate: string): Promise<Patient> { return await this.addPatientIn(this.pool, name, birthdate, null) }

  async updatePatient (id: number, name: string): Promise<Patient | null> {
    const { rows } = await this.pool.query<PatientRow>('UPDATE patients SET name = $1, updated_at = $2 WHERE id = $3 RETURNING *', [name, Date.now(), id])
    return rows.length === 0 ? null : patientOf(rows[0])
  }

  async addEncounter (patientId: number, type: string, source: string): Promise<Encounter> { return await this.addEncounterIn(this.pool, patientId, type, source) }

  async encounters (patientId: number): Promise<Encounter[]> {
    return (await this.pool.query<EncounterRow>('SELECT * FROM encounters WHERE patient_id = $1 ORDER BY id', [patientId])).rows.map(encounterOf)
  }

  async importAdmission (a: Admission, fence: bigint, node: string, stillValid: () => boolean): Promise<ImportResult> {
    return await this.transaction(async c => {
      const record = async (outcome: ImportOutcome): Promise<void> => {
        await c.query('INSERT INTO hl7_attempts (control_id, fence, node, outcome) VALUES ($1, $2, $3, $4)', [a.controlId, String(fence), node, outcome])
      }
      await c.query('INSERT INTO hl7_messages (control_id) VALUES ($1) ON CONFLICT DO NOTHING', [a.controlId])
      const { rows: [message] } = await c.query<{ patient_id: number | null }>('SELECT patient_id FROM hl7_messages WHERE control_id = $1 FOR UPDATE', [a.controlId])
      const { rows: [{ highest }] } = await c.query<{ highest: string | null }>("SELECT max(fence) AS highest FROM hl7_attempts WHERE control_id = $1 AND outcome <> 'stale'", [a.controlId])
      if (isStale(fence, highest)) {
        await record('stale')
        return { outcome: 'stale', patient: null }
      }
      if (message.patient_id !== null) {
        await record('duplicate')
        return { outcome: 'duplicate', patient: await this.patientIn(c, message.patient_id) }
      }
      const { rows: found } = await c.query<PatientRow>(`${PATIENT} WHERE identifier = $1 ORDER BY id LIMIT 1`, [a.identifier])
      const existing = found.length === 0 ? null : patientOf(found[0])
      const patient = existing ?? await this.addPatientIn(c, a.name, a.birthdate, a.identifier)
      await this.addEncounterIn(c, patient.id, 'ADMISSION', `hl7:${a.controlId}`)
      await c.query('UPDATE hl7_messages SET patient_id = $2, fence = $3, node = $4 WHERE control_id = $1', [a.controlId, patient.id, String(fence), node])
      const outcome = existing === null ? 'imported' : 'merged'
      await record(outcome)
      if (!stillValid()) throw new StaleWriteError(`the claim on ${a.controlId} (fence ${fence}) lapsed before the import committed`)
      return { outcome, patient }
    })
  }

  async purgeEncounters (before: number, task: string, fence: bigint, node: string, scheduledAt: number, stillValid: () => boolean): Promise<number> {
    return await this.transaction(async c => {
      await c.query('INSERT INTO tasks (task) VALUES ($1) ON CONFLICT DO NOTHING', [task])
      await c.query('SELECT task FROM tasks WHERE task = $1 FOR UPDATE', [task])
      const { rows: [{ highest }] } = await c.query<{ highest: string | null }>('SELECT max(fence) AS highest FROM task_runs WHERE task = $1', [task])
      if (isStale(fence, highest)) throw new StaleWriteError(`${task} run with fence ${fence} is stale: fence ${String(highest)} already ran`)
      const { rowCount } = await c.query('DELETE FROM encounters WHERE at < $1', [before])
      await c.query('INSERT INTO task_runs (task, fence, node, scheduled_at, removed) VALUES ($1, $2, $3, $4, $5)', [task, String(fence), node, scheduledAt, rowCount ?? 0])
      if (!stillValid()) throw new StaleWriteError(`${task} run with fence ${fence} lapsed before it committed`)
      return rowCount ?? 0
    })
  }

  async taskRuns (task: string): Promise<TaskRun[]> {
    const { rows } = await this.pool.query<{ fence: string, node: string, scheduled_at: string, removed: number }>('SELECT fence, node, scheduled_at, removed FROM task_runs WHERE task = $1 ORDER BY scheduled_at', [task])
    return rows.map(r => ({ fence: r.fence, node: r.node, scheduledAt: Number(r.scheduled_at), removed: r.removed }))
  }

  async hl7Attempts (): Promise<Hl7Attempt[]> {
    const { rows } = await this.pool.query<{ seq: string, control_id: string, fence: string, node: string, outcome: ImportOutcome }>('SELECT * FROM hl7_attempts ORDER BY seq')
    return rows.map(r => ({ seq: Number(r.seq), controlId: r.control_id, fence: r.fence, node: r.node, outcome: r.outcome }))
  }

  async close (): Promise<void> { await this.pool.end() }
}
