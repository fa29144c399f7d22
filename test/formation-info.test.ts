/**
 * The node info a member answers while the cluster forms (lib/formation.ts):
 * whatever bytes come back, decoding either gives an info or throws the
 * mesh's ProtocolFrameError, never a SyntaxError or TypeError from inside.
 */
import t from 'tap'
import { ProtocolFrameError } from '../gossip/errors.js'
import { decodeInfo, encodeInfo } from '../lib/formation.js'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

t.test('an info round-trips', async t => {
  t.same(decodeInfo(encodeInfo({ formed: true, leader: 'n2' })), { formed: true, leader: 'n2' })
  t.same(decodeInfo(encodeInfo({ formed: false, leader: null })), { formed: false, leader: null })
})

t.test('an answer that is not a JSON object is a ProtocolFrameError', async t => {
  for (const bad of ['', '{"formed":tru', '\u00ff\u0001', 'null', '7', '"x"']) {
    t.throws(() => decodeInfo(utf8(bad)), ProtocolFrameError, JSON.stringify(bad))
  }
})

t.test('fields of the wrong type read as "not formed, no leader"', async t => {
  t.same(decodeInfo(utf8('{"formed":"yes","leader":7}')), { formed: false, leader: null })
  t.same(decodeInfo(utf8('[]')), { formed: false, leader: null })
})
