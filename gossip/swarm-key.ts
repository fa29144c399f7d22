/**
 * The private-network key (@libp2p/pnet) derived from the cluster secret.
 * Every connection is XSalsa20-encrypted with it before noise even starts,
 * so a process without the secret cannot complete a TCP-level handshake,
 * let alone speak a protocol.
 *
 * The key depends on the secret only, not on the cluster name: two clusters
 * that share a secret then reach the join handshake, which refuses the peer
 * with an error naming both clusters. Mixing the name into the key would
 * turn that clear refusal into an anonymous encryption failure.
 */
import { hkdfSync } from 'node:crypto'
import { InvalidArgumentError } from './errors.js'

/** Shortest secret accepted: anything shorter is guessable. */
export const MIN_SECRET_BYTES = 16
const SALT = 'raftmesh/pnet/v1'
const INFO = 'libp2p private network key'

/** The 32-byte PSK derived with HKDF-SHA256 from the secret. */
export function derivePsk (secret: string | Uint8Array): Uint8Array {
  const ikm = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret
  if (ikm.byteLength < MIN_SECRET_BYTES) {
    throw new InvalidArgumentError(`the cluster secret must be at least ${MIN_SECRET_BYTES} bytes, got ${ikm.byteLength}`)
  }
  return new Uint8Array(hkdfSync('sha256', ikm, SALT, INFO, 32))
}

/** The secret as a swarm key file in the format `@libp2p/pnet` parses (`/key/swarm/psk/1.0.0/`, base16). */
export function swarmKeyFromSecret (secret: string | Uint8Array): Uint8Array {
  const hex = Buffer.from(derivePsk(secret)).toString('hex')
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${hex}`)
}
