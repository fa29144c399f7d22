/**
 * A node:http server on 127.0.0.1 for one request handler, and the small
 * readers the HTTP tests need: a Prometheus text parser and a
 * server-sent-events reader over fetch.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface TestServer {
  readonly url: string
  close(): Promise<void>
}

export async function serve (handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const server = createServer(handler)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  }
}

export interface Sample {
  readonly name: string
  readonly labels: Record<string, string>
  readonly value: number
}

/** Parses the Prometheus text format strictly enough that a malformed line fails the test. */
export function parsePrometheus (text: string): { samples: Sample[], types: Map<string, string> } {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    const type = /^# TYPE (\w+) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type !== null) {
      types.set(type[1], type[2])
      continue
    }
    if (/^# HELP \w+ .+$/.test(line)) continue
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) throw new Error(`not a Prometheus sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)",?/g)) labels[l[1]] = l[2]
    const value = m[3] === '+Inf' ? Infinity : Number(m[3])
    if (Number.isNaN(value)) throw new Error(`not a number in: ${line}`)
    samples.push({ name: m[1], labels, value })
  }
  return { samples, types }
}

/** The value of the one sample with this name whose labels include `labels`. */
export function sampleValue (samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (found.length !== 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`)
  return found[0].value
}

export interface SseEvent {
  readonly event: string
  readonly id: string | null
  readonly data: string
}

/** Reads a text/event-stream response, handing each event to `onEvent`, until the stream ends or the signal aborts. */
export async function readEvents (res: Response, onEvent: (e: SseEvent) => void): Promise<void> {
  if (res.body === null) throw new Error('no body')
  const decoder = new TextDecoder()
  let buffered = ''
  try {
    for await (const chunk of res.body) {
      buffered += decoder.decode(chunk, { stream: true })
      let end
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const block = buffered.slice(0, end)
        buffered = buffered.slice(end + 2)
        const fields = new Map<string, string>()
        for (const line of block.split('\n')) {
          const i = line.indexOf(': ')
          if (i > 0) fields.set(line.slice(0, i), line.slice(i + 2))
        }
        if (fields.has('data')) onEvent({ event: fields.get('event') ?? 'message', id: fields.get('id') ?? null, data: fields.get('data') ?? '' })
      }
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err
  }
}
