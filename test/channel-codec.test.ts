/**
 * The channel batch format: a round trip with receivers' starts, and the
 * malformed headers a receiver must refuse before using anything in them.
 */
import t from 'tap'
import { CHANNEL_FRAME_VERSION, MAX_BATCH_STARTS, channelMessageId, decodeChannelBatch, encodeChannelBatch, type ChannelBatch } from '../gossip/channel-codec.js'
import { ProtocolFrameError } from '../gossip/errors.js'

const items = [new Uint8Array([1, 2]), new Uint8Array([3])]
const batch = (over: Partial<ChannelBatch> = {}): ChannelBatch => ({ publisher: 'n1', incarnation: 'inc', firstSeq: 10, items, ...over })

t.test('a batch with starts decodes to what was encoded', async t => {
  const b = batch({ starts: [['n2', 7], ['n3', 10]] })
  t.same(decodeChannelBatch(encodeChannelBatch(b)), b)
  t.same(decodeChannelBatch(encodeChannelBatch(batch())).starts, [], 'no starts is an empty list')
})

t.test('starts that cannot be true are refused', async t => {
  t.throws(() => decodeChannelBatch(encodeChannelBatch(batch({ starts: [['n2', 11]] }))), ProtocolFrameError, 'a start after the batch\'s first sequence number')
  t.throws(() => decodeChannelBatch(encodeChannelBatch(batch({ starts: [['n2', 0]] }))), ProtocolFrameError, 'a start of 0')
  const many = Array.from({ length: MAX_BATCH_STARTS + 1 }, (_, i): [string, number] => [`r${i}`, 1])
  t.throws(() => encodeChannelBatch(batch({ starts: many })), ProtocolFrameError, 'more starts than a batch may carry, at encode')
  const bytes = encodeChannelBatch(batch({ starts: [['n2', 7]] }))
  t.throws(() => decodeChannelBatch(bytes.subarray(0, 12)), ProtocolFrameError, 'a header cut inside the starts')
  t.throws(() => decodeChannelBatch(Uint8Array.of(CHANNEL_FRAME_VERSION - 1, ...bytes.subarray(1))), ProtocolFrameError, 'the previous frame version')
})

t.test('the message id covers the whole header, starts included', async t => {
  const a = channelMessageId({ topic: 't', data: encodeChannelBatch(batch()) })
  const b = channelMessageId({ topic: 't', data: encodeChannelBatch(batch({ firstSeq: 11 })) })
  t.not(Buffer.from(a).toString('hex'), Buffer.from(b).toString('hex'), 'two batches of one publisher never share an id')
})
