/**
 * The node's Ed25519 libp2p key, kept in `<dataDir>/peer-key` (protobuf, mode
 * 0600) so a restarted node has the same peer id and its peers recognise it.
 * A file that exists but cannot be read as a key is an error, never
 * silently replaced: replacing it would give the node a new identity.
 */
import './polyfill.js'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { PeerKeyError } from './errors.js'
import type { Logger } from './logger.js'

export const PEER_KEY_FILE = 'peer-key'

/** Loads the peer key from `dir`, creating the directory and a new key on first start. */
export async function loadOrCreatePeerKey (dir: string, log: Logger): Promise<PrivateKey> {
  await mkdir(dir, { recursive: true })
  const file = join(dir, PEER_KEY_FILE)
  let bytes: Uint8Array | null = null
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new PeerKeyError(file, `cannot read: ${(err as Error).message}`)
  }
  if (bytes !== null) {
    let key: PrivateKey
    try {
      key = privateKeyFromProtobuf(bytes)
    } catch (err) {
      throw new PeerKeyError(file, `not a libp2p private key (${(err as Error).message}); move it away to start with a new identity`)
    }
    if (key.type !== 'Ed25519') throw new PeerKeyError(file, `expected an Ed25519 key, found ${key.type}`)
    const mode = (await stat(file)).mode & 0o777
    if ((mode & 0o077) !== 0) log.warn({ file, mode: mode.toString(8) }, 'peer key file is readable by other users; it should be mode 600')
    return key
  }
  const key = await generateKeyPair('Ed25519')
  // Write-then-rename so a crash never leaves a half-written key behind.
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(privateKeyToProtobuf(key))
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, file)
  log.info({ file }, 'created a new peer key')
  return key
}
