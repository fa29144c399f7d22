/**
 * Who published an event. The mesh sends messages unsigned (node.ts:
 * StrictNoSign), so the channel's publisher field is only a claim. Each
 * event is therefore signed with its publisher's peer key (the Ed25519 key
 * whose public half is its libp2p peer id). An event that comes over the
 * publisher's own connection (authenticated by noise, admitted under that
 * node id) is proven by the connection, and members do not relay, so that
 * is the common case and costs no verification (ChannelMessage.direct);
 * one that another member passes on is checked against the peer id the
 * publisher joined with (membership). An event that fails is dropped and
 * counted: a member cannot put words in another's mouth.
 */
import type { PrivateKey, PublicKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { createPrivateKey, sign, type KeyObject } from 'node:crypto'
import { toString } from 'uint8arrays/to-string'
import type { Membership } from '../../gossip/membership.js'
import { InvalidArgumentError } from '../errors.js'
import { signedBytes } from './event-codec.js'

export type Verdict = 'authentic' | 'forged' | 'unknown-publisher'

export class EventAuthenticity {
  private readonly nodeId: string
  /**
   * The peer key as a node:crypto key, made once. libp2p's `sign()` builds
   * it again from JWK on every call, which was half of what each published
   * event cost (about 50 of 100 µs); Ed25519 signatures are deterministic,
   * so the bytes are the same.
   */
  private readonly key: KeyObject
  private readonly membership: Membership
  /** Public keys by peer id, so a peer id is parsed once. */
  private readonly keys = new Map<string, PublicKey | null>()

  constructor (nodeId: string, key: PrivateKey, membership: Membership) {
    if (key.type !== 'Ed25519' || key.raw.byteLength !== 64) throw new InvalidArgumentError(`events are signed with an Ed25519 peer key, got ${key.type}`)
    this.nodeId = nodeId
    this.key = createPrivateKey({
      format: 'jwk',
      key: { kty: 'OKP', crv: 'Ed25519', d: toString(key.raw.subarray(0, 32), 'base64url'), x: toString(key.raw.subarray(32), 'base64url') }
    })
    this.membership = membership
  }

  sign (body: Uint8Array): Uint8Array {
    return sign(null, signedBytes(this.nodeId, body), this.key)
  }

  async verify (publisher: string, body: Uint8Array, signature: Uint8Array): Promise<Verdict> {
    const peerId = this.membership.get(publisher)?.peerId
    const key = peerId === undefined ? null : this.publicKey(peerId)
    if (key === null) return 'unknown-publisher'
    return await key.verify(signedBytes(publisher, body), signature) ? 'authentic' : 'forged'
  }

  private publicKey (peerId: string): PublicKey | null {
    let key = this.keys.get(peerId)
    if (key === undefined) {
      try {
        key = peerIdFromString(peerId).publicKey ?? null
      } catch {
        key = null
      }
      this.keys.set(peerId, key)
    }
    return key
  }
}
