// Loads the tests' TypeScript through hooks.mjs (see there why not ts-node or tsx).
import { register } from 'node:module'

register('./hooks.mjs', import.meta.url)
