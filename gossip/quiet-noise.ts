/**
 * @libp2p/noise 17 reads its length-prefixed frames with @libp2p/utils'
 * LengthPrefixedDecoder, whose length decoder signals "not enough bytes yet"
 * by throwing a RangeError. A received chunk that ends on a frame boundary
 * (nearly all of them) leaves an empty buffer, so every chunk a node reads
 * builds and throws an Error, stack trace included: 4% of a Raft leader's
 * busy time under the lock workload (bench/RESULTS.md, eighth session).
 *
 * This wraps noise's encrypter so that each encrypted connection's decoder
 * answers a short buffer with length 0 instead: the decoder then finds the
 * buffer shorter than the 2-byte prefix and waits for more bytes, exactly
 * as after the RangeError, and decodes every complete frame unchanged.
 * Should a later noise rename the fields read here, the connection keeps
 * the original decoder.
 */
import { noise } from '@libp2p/noise'
import type { ConnectionEncrypter } from '@libp2p/interface'

type NoiseInit = Parameters<typeof noise>[0]
type Components = Parameters<ReturnType<typeof noise>>[0]
/** A Uint8ArrayList, as the decoder buffers received bytes. */
interface ByteList { readonly length: number, getUint16: (byteOffset: number) => number }

/** The 2-byte big-endian length of the next frame, or 0 while fewer than 2 bytes are buffered. */
export function frameLengthOrZero (data: Uint8Array | ByteList): number {
  if (data.length < 2) return 0
  if (data instanceof Uint8Array) return (data[0] << 8) + data[1]
  return data.getUint16(0)
}

interface DecoderFields { decoder?: { lengthDecoder?: unknown } }

function quiet<T extends { connection: unknown }> (secured: T): T {
  const decoder = (secured.connection as DecoderFields).decoder
  if (decoder !== undefined && typeof decoder.lengthDecoder === 'function') decoder.lengthDecoder = frameLengthOrZero
  return secured
}

/** `noise()` whose connections decode without throwing per received chunk. */
export function quietNoise (init?: NoiseInit): (components: Components) => ConnectionEncrypter {
  const make = noise(init)
  return components => {
    const encrypter = make(components)
    const outbound = encrypter.secureOutbound.bind(encrypter)
    const inbound = encrypter.secureInbound.bind(encrypter)
    encrypter.secureOutbound = async (connection, options) => quiet(await outbound(connection, options))
    encrypter.secureInbound = async (connection, options) => quiet(await inbound(connection, options))
    return encrypter
  }
}
