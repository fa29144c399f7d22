/** `node --import tsx --import testkit/clock-skew-preload.ts …`: runs the process at RAFTMESH_TEST_CLOCK_RATE (see clock-skew.ts). */
import { CLOCK_RATE_ENV, parseClockRate, skewClock } from './clock-skew.js'

skewClock(parseClockRate(process.env[CLOCK_RATE_ENV]))
