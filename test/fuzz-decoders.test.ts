/**
 * A short run of the decoder fuzzer (bench/fuzz.ts runs 1,000,000 frames):
 * a few thousand seeded frames through every decoder of network bytes;
 * none may crash or hang, and every valid frame must round-trip. A failure
 * prints the seed and the bench command that replays the frame's batch.
 */
import t from 'tap'
import { runFuzz } from '../testkit/fuzz/run.js'
import { TARGETS } from '../testkit/fuzz/targets.js'

const seed = Number(process.env.FUZZ_SEED ?? 20_250_601)
const frames = 300 * TARGETS.length

t.test(`${frames} fuzzed frames through ${TARGETS.length} decoders (FUZZ_SEED=${seed})`, async t => {
  const r = runFuzz({ frames, seed })
  for (const d of r.targets) {
    t.equal(d.crashes + d.hangs, 0, `${d.target}: ${d.frames} frames, ${d.roundTrips} round-trips, ${d.rejected} rejected, no crash or hang`)
    t.ok(d.roundTrips > 0 && d.rejected > 0, `${d.target}: valid frames and bad frames were both tried`)
  }
  for (const c of r.crashes) {
    t.fail(`${c.target} ${c.kind}: ${c.error}`, { frame: c.hex.slice(0, 400), replay: `npm run bench -- fuzz --seed ${c.seed} --target ${c.target} --batch ${c.batch}` })
  }
})
