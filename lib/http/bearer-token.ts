/**
 * The optional bearer token in front of the handler. Both sides are hashed
 * before the comparison so that it takes the same time whatever the length
 * or content of the guess.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { fromString } from 'uint8arrays/from-string'

export type TokenCheck = (req: IncomingMessage) => boolean

export function bearerTokenCheck (token: string | undefined): TokenCheck {
  if (token === undefined) return () => true
  const expected = digest(token)
  return req => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')
    // A missing header is compared too, so a refusal always costs one hash and one comparison.
    return timingSafeEqual(digest(m?.[1] ?? ''), expected) && m !== null
  }
}

function digest (s: string): Uint8Array {
  return createHash('sha256').update(fromString(s, 'utf8')).digest()
}
