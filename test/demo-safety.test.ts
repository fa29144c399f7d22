/**
 * The safety checks `npm start` runs on the clinic database after a run:
 * a clean history passes, and each kind of violation is reported.
 */
import t from 'tap'
import type { Hl7Attempt, Patient, TaskRun } from '../examples/clinic-server/database.js'
import { checkSafety } from '../examples/cluster-demo/safety.js'

let seq = 0
const attempt = (controlId: string, fence: number, outcome: Hl7Attempt['outcome']): Hl7Attempt => ({ seq: ++seq, controlId, fence: String(fence), node: 'n1', outcome })
const patient = (id: number, identifier: string): Patient => ({ id, identifier, name: 'Grace Njeri', birthdate: '2001-05-15', updatedAt: 0 })
const run = (scheduledAt: number, fence: number): TaskRun => ({ fence: String(fence), node: 'n2', scheduledAt, removed: 0 })

const clean = {
  accepted: new Set(['A', 'B']),
  attempts: [attempt('A', 10, 'imported'), attempt('B', 12, 'merged'), attempt('A', 15, 'duplicate'), attempt('A', 14, 'stale')],
  patients: [patient(1, 'PAT-1'), patient(2, 'PAT-2')],
  purgeRuns: [run(1000, 20), run(2000, 25)]
}

t.test('a clean run has no violations, and its counts', async t => {
  const r = checkSafety(clean)
  t.same(r.violations, [])
  t.match(r, { messages: 2, attempts: 4, retries: 2, stale: 1, merged: 1, purgeRuns: 2 })
})

t.test('an accepted message that was never imported', async t => {
  t.match(checkSafety({ ...clean, accepted: new Set(['A', 'B', 'C']) }).violations, [/HL7 C was accepted but never imported/])
})

t.test('a message imported twice', async t => {
  t.match(checkSafety({ ...clean, attempts: [...clean.attempts, attempt('B', 30, 'imported')] }).violations, [/HL7 B was imported 2 times/])
})

t.test('a message with only a duplicate attempt was never imported', async t => {
  t.match(checkSafety({ ...clean, attempts: [...clean.attempts, attempt('D', 31, 'duplicate')] }).violations, [/HL7 D was imported 0 times/])
})

t.test('accepted fences that go back', async t => {
  t.match(checkSafety({ ...clean, attempts: [...clean.attempts, attempt('A', 13, 'duplicate')] }).violations, [/HL7 A: accepted fences do not increase: 10, 15, 13/])
})

t.test('one identifier on two patients', async t => {
  t.match(checkSafety({ ...clean, patients: [...clean.patients, patient(3, 'PAT-1')] }).violations, [/identifier PAT-1 belongs to 2 patients \(1, 3\)/])
})

t.test('a purge tick run twice', async t => {
  t.match(checkSafety({ ...clean, purgeRuns: [...clean.purgeRuns, run(2000, 26)] }).violations, [/purge tick .* ran 2 times/])
})

t.test('purge fences that go back', async t => {
  t.match(checkSafety({ ...clean, purgeRuns: [...clean.purgeRuns, run(3000, 24)] }).violations, [/purge fences do not increase: .* #24 after #25/])
})
