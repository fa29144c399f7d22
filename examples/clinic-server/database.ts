/**
 * The clinic's shared database, as OpenMRS nodes share one: a SQLite file
 * every node opens (sqlite-database.ts), or PostgreSQL when DATABASE_URL is
 * set (postgres-database.ts). Both give the same asynchronous interface and
 * the same guarantees:
 *
 * - an HL7 admission is imported once per message control id: two nodes
 *   importing one message queue behind each other, and the second finds it
 *   done;
 * - writes from queue items and scheduled runs carry their fence, and the
 *   database refuses one whose fence is not above every fence it accepted
 *   for that message or task, so a stale worker's late write changes nothing
 *   (fences are log indices of one cluster: a cluster started afresh, with
 *   new data directories, needs a fresh database or schema);
 * - every import attempt that reaches the database is recorded with its
 *   fence and outcome, and every purge run with its fence, so the history
 *   can be checked afterwards (`npm start` does).
 */
import type { Admission } from './hl7.js'

export interface Patient { id: number, identifier: string | null, name: string, birthdate: string, updatedAt: number }
export interface Encounter { id: number, patientId: number, type: string, at: number, source: string }

/** `merged`: imported into the patient that already had this identifier. */
export type ImportOutcome = 'imported' | 'merged' | 'duplicate' | 'stale'
export interface ImportResult { outcome: ImportOutcome, patient: Patient | null }
export interface Hl7Attempt { seq: number, controlId: string, fence: string, node: string, outcome: ImportOutcome }
export interface TaskRun { fence: string, node: string, scheduledAt: number, removed: number }

/** A write whose fence or claim lapsed before it could commit; nothing was written. */
export class StaleWriteError extends Error {
  override readonly name = 'StaleWriteError'
}

export interface ClinicDb {
  readonly kind: 'sqlite' | 'postgres'
  patient: (id: number) => Promise<Patient | null>
  allPatients: () => Promise<Patient[]>
  addPatient: (name: string, birthdate: string) => Promise<Patient>
  updatePatient: (id: number, name: string) => Promise<Patient | null>
  addEncounter: (patientId: number, type: string, source: string) => Promise<Encounter>
  encounters: (patientId: number) => Promise<Encounter[]>
  /**
   * Imports an admission: creates the patient, or merges into the one that
   * has its identifier, adds the admission encounter and records the
   * message. The identifier is not unique in the schema (OpenMRS checks it
   * in the application), so callers serialise imports per identifier
   * themselves (the server with a cluster lock). `stillValid` is asked
   * last, before the commit: false rolls back with StaleWriteError.
   */
  importAdmission: (a: Admission, fence: bigint, node: string, stillValid: () => boolean) => Promise<ImportResult>
  /** Deletes encounters older than `before` and records the run; StaleWriteError if a later run is recorded or `stillValid` fails. */
  purgeEncounters: (before: number, task: string, fence: bigint, node: string, scheduledAt: number, stillValid: () => boolean) => Promise<number>
  taskRuns: (task: string) => Promise<TaskRun[]>
  /** Every import attempt, in the order the database serialised them. */
  hl7Attempts: () => Promise<Hl7Attempt[]>
  close: () => Promise<void>
}

/** PostgreSQL when `url` is given, otherwise the SQLite `file`. */
export async function openClinicDb (opts: { url?: string, file?: string }): Promise<ClinicDb> {
  if (opts.url !== undefined && opts.url !== '') {
    const { PostgresClinicDb } = await import('./postgres-database.js')
    return await PostgresClinicDb.open(opts.url)
  }
  if (opts.file === undefined || opts.file === '') throw new Error('a database is needed: --db <sqlite file> or DATABASE_URL=postgres://...')
  const { SqliteClinicDb } = await import('./sqlite-database.js')
  return new SqliteClinicDb(opts.file)
}

/** The fence an attempt must exceed, from the highest one accepted so far (null: none yet). */
export function isStale (fence: bigint, highestAccepted: string | number | bigint | null): boolean {
  return highestAccepted !== null && BigInt(highestAccepted) >= fence
}
