/**
 * Just enough HL7 v2 for the example: an ADT admission's message control id
 * (MSH-10), the patient's identifier (PID-3, first component), name (PID-5,
 * family^given) and birth date (PID-7).
 */
export interface Admission { controlId: string, identifier: string, name: string, birthdate: string }

export class Hl7Error extends Error {
  override readonly name = 'Hl7Error'
}

export function parseAdmission (text: string): Admission {
  const segments = text.split(/\r\n|\r|\n/).filter(s => s.length > 0)
  const field = (seg: string, n: number): string => {
    const s = segments.find(x => x.startsWith(`${seg}|`))
    if (s === undefined) throw new Hl7Error(`no ${seg} segment`)
    // MSH-1 is the field separator itself, so MSH fields sit one place to the left.
    const parts = s.split('|')
    return parts[seg === 'MSH' ? n - 1 : n] ?? ''
  }
  const controlId = field('MSH', 10)
  const identifier = field('PID', 3).split('^')[0]
  const [family, given] = field('PID', 5).split('^')
  const birth = field('PID', 7)
  if (controlId === '' || controlId.length > 64) throw new Hl7Error('MSH-10 (message control id) is missing or too long')
  if (identifier === '' || identifier.length > 64) throw new Hl7Error('PID-3 (patient identifier) is missing or too long')
  if (family === undefined || family === '') throw new Hl7Error('PID-5 (patient name) is missing')
  if (!/^\d{8}$/.test(birth)) throw new Hl7Error('PID-7 (birth date) must be YYYYMMDD')
  return { controlId, identifier, name: [given, family].filter(Boolean).join(' '), birthdate: `${birth.slice(0, 4)}-${birth.slice(4, 6)}-${birth.slice(6, 8)}` }
}
