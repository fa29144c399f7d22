/**
 * What the clinic's users do, through the servers' HTTP API, on whichever
 * node is up: register patients and read them back on other nodes (the
 * entity cache), send HL7 admissions to the inbound queue (some for known
 * patients, which merge, and some sent twice to two nodes), write and read
 * a global setting, and search. Counts operations and errors by kind, and
 * keeps every HL7 message a node accepted (202) for the safety check.
 */
export type OpKind = 'create' | 'read' | 'hl7' | 'setting' | 'search'

export interface WorkloadTarget {
  /** HTTP base URLs of the nodes that are up and not paused now. */
  live: () => string[]
}

export interface WorkloadCounts {
  readonly ok: Record<OpKind, number>
  readonly errors: Record<OpKind, number>
  /** Error causes (HTTP status or exception name) and how often each happened. */
  readonly causes: Map<string, number>
  /** Control ids of the HL7 messages a node accepted. */
  readonly accepted: Set<string>
}

const kinds: OpKind[] = ['create', 'read', 'read', 'hl7', 'hl7', 'setting', 'search']
const families = ['Otieno', 'Kamau', 'Njeri', 'Wanjiru', 'Mutua', 'Achieng', 'Barasa', 'Chebet', 'Kiprop', 'Odhiambo']
const givens = ['Amina', 'Joseph', 'Grace', 'Peter', 'Mary', 'David', 'Faith', 'John']

const hl7 = (controlId: string, identifier: string, family: string, given: string): string =>
  [`MSH|^~\\&|LAB|CLINIC|OPENMRS|CLINIC|20261204120000||ADT^A01|${controlId}|P|2.5`, `PID|1||${identifier}||${family}^${given}||19800101|F`].join('\r')

class OpError extends Error {}

export class Workload {
  readonly counts: WorkloadCounts = {
    ok: { create: 0, read: 0, hl7: 0, setting: 0, search: 0 },
    errors: { create: 0, read: 0, hl7: 0, setting: 0, search: 0 },
    causes: new Map(),
    accepted: new Set()
  }

  private readonly patients: number[] = []
  private messages = 0
  private running: Promise<void>[] = []
  private readonly stopController = new AbortController()

  constructor (private readonly target: WorkloadTarget, private readonly run: string) {}

  /** Starts `loops` concurrent clients, each pausing `gapMs` between requests. */
  start (loops: number, gapMs: number): void {
    this.running = Array.from({ length: loops }, async () => {
      const signal = this.stopController.signal
      while (!signal.aborted) {
        await this.once(kinds[Math.floor(Math.random() * kinds.length)])
        await new Promise(resolve => setTimeout(resolve, gapMs))
      }
    })
  }

  async stop (): Promise<void> {
    this.stopController.abort()
    await Promise.all(this.running)
  }

  get total (): { ok: number, errors: number } {
    const sum = (r: Record<OpKind, number>): number => Object.values(r).reduce((a, b) => a + b, 0)
    return { ok: sum(this.counts.ok), errors: sum(this.counts.errors) }
  }

  private pick<T> (xs: readonly T[]): T { return xs[Math.floor(Math.random() * xs.length)] }

  private async call (base: string, method: string, path: string, body?: string): Promise<any> {
    const res = await fetch(`${base}${path}`, { method, body, signal: AbortSignal.timeout(3000) })
    const text = await res.text()
    if (res.status >= 300) throw new OpError(`HTTP ${res.status}`)
    return JSON.parse(text) as unknown
  }

  private async once (kind: OpKind): Promise<void> {
    const live = this.target.live()
    if (live.length === 0) return
    const node = this.pick(live)
    try {
      await this.op(kind, node, live)
      this.counts.ok[kind]++
    } catch (err) {
      this.counts.errors[kind]++
      const cause = err instanceof OpError ? err.message : (err as Error).name === 'TimeoutError' ? 'timeout' : 'connection'
      this.counts.causes.set(`${kind} ${cause}`, (this.counts.causes.get(`${kind} ${cause}`) ?? 0) + 1)
    }
  }

  private async op (kind: OpKind, node: string, live: string[]): Promise<void> {
    if (kind === 'create') {
      const p = await this.call(node, 'POST', '/patients', JSON.stringify({ name: `${this.pick(givens)} ${this.pick(families)}`, birthdate: '1990-01-01' }))
      this.patients.push(p.id as number)
    } else if (kind === 'read') {
      if (this.patients.length === 0) return
      // Read twice on two nodes: the second read of a patient on a node comes from its entity cache.
      const id = this.pick(this.patients)
      await this.call(node, 'GET', `/patients/${id}`)
      await this.call(this.pick(live), 'GET', `/patients/${id}`)
    } else if (kind === 'hl7') {
      const n = ++this.messages
      const controlId = `${this.run}-${n}`
      // One identifier in four repeats a recent one: that admission merges into the patient, under the patient's lock.
      const identifier = `PAT-${this.run}-${n % 4 === 0 ? Math.max(1, n - 1 - Math.floor(Math.random() * 6)) : n}`
      const message = hl7(controlId, identifier, this.pick(families), this.pick(givens))
      await this.call(node, 'POST', '/hl7', message)
      this.counts.accepted.add(controlId)
      // One message in ten is sent again to another node, as an interface engine retrying would.
      if (n % 10 === 0) await this.call(this.pick(live), 'POST', '/hl7', message)
    } else if (kind === 'setting') {
      await this.call(node, 'PUT', '/settings/default-locale', JSON.stringify({ value: this.pick(['en_GB', 'sw_KE', 'fr_FR']) }))
      await this.call(this.pick(live), 'GET', '/settings/default-locale')
    } else {
      await this.call(node, 'GET', `/search?q=${this.pick(families).toLowerCase()}`)
    }
  }
}
