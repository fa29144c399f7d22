/**
 * The clinic database in one SQLite file that every node opens (better-sqlite3,
 * synchronous underneath). WAL mode and a busy timeout let several processes
 * write it; fenced writes run as BEGIN IMMEDIATE transactions, which take
 * SQLite's one write lock at BEGIN, so two nodes importing one message queue
 * behind each other instead of both reading "not imported yet".
 */
import Database from 'better-sqlite3'
import { isStale, StaleWriteError, type ClinicDb, type Encounter, type Hl7Attempt, type ImportOutcome, type ImportResult, type Patient, type TaskRun } from './database.js'
import type { Admission } from './hl7.js'

const PATIENT = 'SELECT id, identifier, name, birthdate, updated_at AS updatedAt FROM patients'

export class SqliteClinicDb implements ClinicDb {
  readonly kind = 'sqlite'
  private readonly db: Database.Database

  constructor (file: string) {
    this.db = new Database(file)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('busy_timeout = 5000')
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS patients (id INTEGER PRIMARY KEY, identifier TEXT, name TEXT NOT NULL, birthdate TEXT NOT NULL, updated_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS patients_identifier ON patients (identifier);
      CREATE TABLE IF NOT EXISTS encounters (id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL REFERENCES patients(id), type TEXT NOT NULL, at INTEGER NOT NULL, source TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS hl7_messages (control_id TEXT PRIMARY KEY, patient_id INTEGER NOT NULL, fence INTEGER NOT NULL, node TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS hl7_attempts (seq INTEGER PRIMARY KEY AUTOINCREMENT, control_id TEXT NOT NULL, fence INTEGER NOT NULL, node TEXT NOT NULL, outcome TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS task_runs (task TEXT NOT NULL, fence INTEGER NOT NULL, node TEXT NOT NULL, scheduled_at INTEGER NOT NULL, removed INTEGER NOT NULL, PRIMARY KEY (task, fence));
    `)
  }

  private patientSync (id: number): Patient | null {
    return (this.db.prepare(`${PATIENT} WHERE id = ?`).get(id) as Patient | undefined) ?? null
  }

  private addPatientSync (name: string, birthdate: string, identifier: string | null): Patient {
    const now = Date.now()
    const { lastInsertRowid } = this.db.prepare('INSERT INTO patients (identifier, name, birthdate, updated_at) VALUES (?, ?, ?, ?)').run(identifier, name, birthdate, now)
    return { id: Number(lastInsertRowid), identifier, name, birthdate, updatedAt: now }
  }

  private addEncounterSync (patientId: number, type: string, source: string): Encounter {
    const at = Date.now()
    const { lastInsertRowid } = this.db.prepare('INSERT INTO encounters (patient_id, type, at, source) VALUES (?, ?, ?, ?)').run(patientId, type, at, source)
    return { id: Number(lastInsertRowid), patientId, type, at, source }
  }

  async patient (id: number): Promise<Patient | null> { return this.patientSync(id) }

  async allPatients (): Promise<Patient[]> { return this.db.prepare(PATIENT).all() as Patient[] }

  async addPatient (name: string, birthdate: string): Promise<Patient> { return this.addPatientSync(name, birthdate, null) }

  async updatePatient (id: number, name: string): Promise<Patient | null> {
    const r = this.db.prepare('UPDATE patients SET name = ?, updated_at = ? WHERE id = ?').run(name, Date.now(), id)
    return r.changes === 0 ? null : this.patientSync(id)
  }

  async addEncounter (patientId: number, type: string, source: string): Promise<Encounter> { return this.addEncounterSync(patientId, type, source) }

  async encounters (patientId: number): Promise<Encounter[]> {
    return this.db.prepare('SELECT id, patient_id AS patientId, type, at, source FROM encounters WHERE patient_id = ? ORDER BY id').all(patientId) as Encounter[]
  }

  async importAdmission (a: Admission, fence: bigint, node: string, stillValid: () => boolean): Promise<ImportResult> {
    const record = (outcome: ImportOutcome): void => {
      this.db.prepare('INSERT INTO hl7_attempts (control_id, fence, node, outcome) VALUES (?, ?, ?, ?)').run(a.controlId, fence, node, outcome)
    }
    return this.db.transaction((): ImportResult => {
      const { highest } = this.db.prepare("SELECT max(fence) AS highest FROM hl7_attempts WHERE control_id = ? AND outcome <> 'stale'").get(a.controlId) as { highest: number | null }
      if (isStale(fence, highest)) {
        record('stale')
        return { outcome: 'stale', patient: null }
      }
      const done = this.db.prepare('SELECT patient_id AS patientId FROM hl7_messages WHERE control_id = ?').get(a.controlId) as { patientId: number } | undefined
      if (done !== undefined) {
        record('duplicate')
        return { outcome: 'duplicate', patient: this.patientSync(done.patientId) }
      }
      const existing = (this.db.prepare(`${PATIENT} WHERE identifier = ? ORDER BY id LIMIT 1`).get(a.identifier) as Patient | undefined) ?? null
      const patient = existing ?? this.addPatientSync(a.name, a.birthdate, a.identifier)
      this.addEncounterSync(patient.id, 'ADMISSION', `hl7:${a.controlId}`)
      this.db.prepare('INSERT INTO hl7_messages (control_id, patient_id, fence, node) VALUES (?, ?, ?, ?)').run(a.controlId, patient.id, fence, node)
      const outcome = existing === null ? 'imported' : 'merged'
      record(outcome)
      if (!stillValid()) throw new StaleWriteError(`the claim on ${a.controlId} (fence ${fence}) lapsed before the import committed`)
      return { outcome, patient }
    }).immediate()
  }

  async purgeEncounters (before: number, task: string, fence: bigint, node: string, scheduledAt: number, stillValid: () => boolean): Promise<number> {
    return this.db.transaction(() => {
      const { highest } = this.db.prepare('SELECT max(fence) AS highest FROM task_runs WHERE task = ?').get(task) as { highest: number | null }
      if (isStale(fence, highest)) throw new StaleWriteError(`${task} run with fence ${fence} is stale: fence ${String(highest)} already ran`)
      const { changes } = this.db.prepare('DELETE FROM encounters WHERE at < ?').run(before)
      this.db.prepare('INSERT INTO task_runs (task, fence, node, scheduled_at, removed) VALUES (?, ?, ?, ?, ?)').run(task, fence, node, scheduledAt, changes)
      if (!stillValid()) throw new StaleWriteError(`${task} run with fence ${fence} lapsed before it committed`)
      return changes
    }).immediate()
  }

  async taskRuns (task: string): Promise<TaskRun[]> {
    const rows = this.db.prepare('SELECT fence, node, scheduled_at AS scheduledAt, removed FROM task_runs WHERE task = ? ORDER BY scheduled_at').all(task) as Array<TaskRun & { fence: number }>
    return rows.map(r => ({ ...r, fence: String(r.fence) }))
  }

  async hl7Attempts (): Promise<Hl7Attempt[]> {
    const rows = this.db.prepare('SELECT seq, control_id AS controlId, fence, node, outcome FROM hl7_attempts ORDER BY seq').all() as Array<Hl7Attempt & { fence: number }>
    return rows.map(r => ({ ...r, fence: String(r.fence) }))
  }

  async close (): Promise<void> { this.db.close() }
}
