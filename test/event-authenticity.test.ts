/**
 * Event signatures (lib/events/authenticity.ts): made with the peer key
 * held as a node:crypto key, they are the very bytes libp2p's own signing
 * makes, and verify against the peer id the publisher joined with; a
 * signature over another publisher's name or another body does not.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import t from 'tap'
import { silentLogger } from '../gossip/logger.js'
import { Membership } from '../gossip/membership.js'
import { EventAuthenticity } from '../lib/events/authenticity.js'
import { signedBytes } from '../lib/events/event-codec.js'

t.test('signatures equal libp2p\'s and verify against the publisher\'s peer id', async t => {
  const key = await generateKeyPair('Ed25519')
  const membership = new Membership({ clock: () => 0, logger: silentLogger })
  membership.admit({ nodeId: 'n1', peerId: peerIdFromPrivateKey(key).toString(), addresses: [], appVersion: '', meta: {} }, 'c1')
  const auth = new EventAuthenticity('n1', key, membership)
  const body = new TextEncoder().encode('an event body')
  const sig = auth.sign(body)
  t.same(Buffer.from(sig), Buffer.from(await key.sign(signedBytes('n1', body))), 'the same bytes as the libp2p key signs')
  t.equal(await auth.verify('n1', body, sig), 'authentic')
  t.equal(await auth.verify('n1', new TextEncoder().encode('another body'), sig), 'forged')
  t.equal(await auth.verify('n2', body, sig), 'unknown-publisher')
})

t.test('a key that is not Ed25519 is refused at once', async t => {
  const key = await generateKeyPair('secp256k1')
  t.throws(() => new EventAuthenticity('n1', key, new Membership({ clock: () => 0, logger: silentLogger })), /Ed25519/)
})
