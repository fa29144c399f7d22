/**
 * The clinic's shared database: one SQLite file every node opens, as
 * OpenMRS nodes share one database. WAL mode and a busy timeout let several
 * processes write it. Writes that come from queue items and scheduled runs
 * carry their fence, so a stale worker's late write is refused here too.
 */
import Database from 'better-sqlite3'

export interface Patient { id: number, name: string, birthdate: string, updatedAt: number }
export interface Encounter { id: number, patientId: number, type: string, at: number, source: string }

export class ClinicDb {
  private readonly db: Database.Database

  constructor (file: string) {
    this.db = new Database(file)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('busy_timeout = 5000')
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS patients (id INTEGER PRIMARY KEY, name TEXT NOT NULL, birthdate TEXT NOT NULL, updated_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS encounters (id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL REFERENCES patients(id), type TEXT NOT NULL, at INTEGER NOT NULL, source TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS hl7_messages (control_id TEXT PRIMARY KEY, patient_id INTEGER NOT NULL, fence TEXT NOT NULL, node TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS task_runs (task TEXT NOT NULL, fence TEXT NOT NULL, node TEXT NOT NULL, scheduled_at INTEGER NOT NULL, removed INTEGER NOT NULL, PRIMARY KEY (task, fence));
    `)
  }

  patient (id: number): Patient | null {
    const row = this.db.prepare('SELECT id, name, birthdate, updated_at AS updatedAt FROM patients WHERE id = ?').get(id) as Patient | undefined
    return row ?? null
  }

  allPatients (): Patient[] {
    return this.db.prepare('SELECT id, name, birthdate, updated_at AS updatedAt FROM patients').all() as Patient[]
  }

  addPatient (name: string, birthdate: string): Patient {
    const now = Date.now()
    const { lastInsertRowid } = this.db.prepare('INSERT INTO patients (name, birthdate, updated_at) VALUES (?, ?, ?)').run(name, birthdate, now)
    return { id: Number(lastInsertRowid), name, birthdate, updatedAt: now }
  }

  updatePatient (id: number, name: string): Patient | null {
    const r = this.db.prepare('UPDATE patients SET name = ?, updated_at = ? WHERE id = ?').run(name, Date.now(), id)
    return r.changes === 0 ? null : this.patient(id)
  }

  addEncounter (patientId: number, type: string, source: string): Encounter {
    const at = Date.now()
    const { lastInsertRowid } = this.db.prepare('INSERT INTO encounters (patient_id, type, at, source) VALUES (?, ?, ?, ?)').run(patientId, type, at, source)
    return { id: Number(lastInsertRowid), patientId, type, at, source }
  }

  encounters (patientId: number): Encounter[] {
    return this.db.prepare('SELECT id, patient_id AS patientId, type, at, source FROM encounters WHERE patient_id = ? ORDER BY id').all(patientId) as Encounter[]
  }

  /**
   * Imports one HL7 admission in one transaction, once per message control
   * id: a message a second worker imports again (after the first one's
   * claim expired) finds it done and changes nothing.
   */
  importAdmission (controlId: string, name: string, birthdate: string, fence: bigint, node: string): { patient: Patient, imported: boolean } {
    return this.db.transaction(() => {
      const done = this.db.prepare('SELECT patient_id AS patientId FROM hl7_messages WHERE control_id = ?').get(controlId) as { patientId: number } | undefined
      if (done !== undefined) return { patient: this.patient(done.patientId) as Patient, imported: false }
      const patient = this.addPatient(name, birthdate)
      this.addEncounter(patient.id, 'ADMISSION', `hl7:${controlId}`)
      this.db.prepare('INSERT INTO hl7_messages (control_id, patient_id, fence, node) VALUES (?, ?, ?, ?)').run(controlId, patient.id, String(fence), node)
      return { patient, imported: true }
    }).immediate()
  }

  /** Deletes encounters older than `before`, recorded once per run's fence. */
  purgeEncounters (before: number, task: string, fence: bigint, node: string, scheduledAt: number): number {
    return this.db.transaction(() => {
      const { changes } = this.db.prepare('DELETE FROM encounters WHERE at < ?').run(before)
      this.db.prepare('INSERT OR IGNORE INTO task_runs (task, fence, node, scheduled_at, removed) VALUES (?, ?, ?, ?, ?)').run(task, String(fence), node, scheduledAt, changes)
      return changes
    }).immediate()
  }

  taskRuns (task: string): Array<{ fence: string, node: string, scheduledAt: number, removed: number }> {
    return this.db.prepare('SELECT fence, node, scheduled_at AS scheduledAt, removed FROM task_runs WHERE task = ? ORDER BY scheduled_at').all(task) as Array<{ fence: string, node: string, scheduledAt: number, removed: number }>
  }

  close (): void {
    this.db.close()
  }
}
