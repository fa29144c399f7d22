/**
 * `npm run bench -- fuzz [--frames N] [--seed S] [--target name] [--batch B]`:
 * feeds N fuzzed frames (default 1,000,000, split evenly) through every
 * decoder of bytes that come from the network or a peer, as the receiving
 * code calls it (testkit/fuzz/targets.ts lists them with their call sites):
 *
 *   stream-framing       gossip/length-prefix.ts FrameDecoder (every long-lived stream)
 *   raft-message         gossip/raft-codec.ts decodeRaftMessage
 *   rpc-frame            gossip/rpc-codec.ts decodeRpcFrame (both sides of a call)
 *   handshake-hello, -verdict, -control   gossip/handshake.ts (admission.ts serves the control stream)
 *   channel-batch        gossip/channel-codec.ts channelMessageId and decodeChannelBatch
 *   cache-update, cache-sync-request, -response, -push   lib/cache/cache-codec.ts
 *   event-signed, -body, -fetch-request, -fetch-response, -head   lib/events/event-codec.ts
 *   command-envelope     lib/coordination/commands.ts decodeEnvelope (proposals forwarded to the leader)
 *   formation-info       lib/formation.ts decodeInfo
 *   app-payload          the msgpack of cache keys and values and of event payloads
 *
 * Frames are valid (must decode back to what was encoded), mutated,
 * msgpack bombs, or random (testkit/fuzz/frames.ts). A crash is an error
 * other than the decoder's named one, a valid frame refused or changed; a
 * hang is one decode over 100 ms (three tries) or a batch that grows the
 * heap by 512 MiB. Each distinct crash is printed with its frame and the
 * flags that replay its batch. Exits 1 if there was any.
 */
import { pathToFileURL } from 'node:url'
import { runFuzz, type FuzzResult } from '../testkit/fuzz/run.js'

export async function runFuzzBench (flags: readonly string[]): Promise<FuzzResult> {
  const value = (name: string): string | undefined => {
    const i = flags.indexOf(name)
    return i === -1 ? undefined : flags[i + 1]
  }
  const frames = Number(value('--frames') ?? 1_000_000)
  const seed = Number(value('--seed') ?? 1)
  const target = value('--target')
  const batch = value('--batch')
  const r = runFuzz({
    frames,
    seed,
    only: target === undefined ? undefined : [target],
    batch: batch === undefined ? undefined : Number(batch),
    onProgress: t => { process.stderr.write(`fuzz ${t.target}: ${t.frames} frames, ${t.crashes} crashes, ${t.hangs} hangs\n`) }
  })
  if (r.crashes.length > 0) process.exitCode = 1
  return r
}

export function fuzzTable (r: FuzzResult): string {
  const rows = r.targets.map(t => [t.target, t.frames, t.roundTrips, t.accepted, t.rejected, t.crashes, t.hangs, Math.round(t.totalMicros / t.frames), Math.round(t.maxMicros)])
  const head = ['decoder', 'frames', 'round-trips', 'accepted', 'rejected', 'crashes', 'hangs', 'mean µs', 'max µs']
  const total = ['total', ...[1, 2, 3, 4, 5, 6].map(i => r.targets.reduce((s, t) => s + Number(rows[r.targets.indexOf(t)][i]), 0)), '', Math.round(Math.max(...r.targets.map(t => t.maxMicros)))]
  const lines = [head, ...rows, total].map(cells => `| ${cells.map(String).join(' | ')} |`)
  lines.splice(1, 0, `|${head.map(() => ' --- ').join('|')}|`)
  const crashes = r.crashes.map(c => `${c.target} ${c.kind} (${c.frameKind} frame, ${c.bytes} bytes, ${c.repeats} more like it): ${c.error}\n  replay: npm run bench -- fuzz --seed ${c.seed} --target ${c.target} --batch ${c.batch}\n  frame: ${c.hex.slice(0, 200)}`)
  return [...lines, `seed ${r.seed}, ${r.seconds.toFixed(0)} s, peak heap ${(r.peakHeapBytes / 2 ** 20).toFixed(0)} MiB, peak rss ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB`, ...crashes].join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await runFuzzBench(process.argv.slice(2))
  console.log(JSON.stringify(r, null, 2))
  console.error(fuzzTable(r))
}
