/**
 * Event topics and subscription patterns. A topic is dot-separated words
 * (`encounter.saved`); a pattern may use `*` for exactly one word
 * (`encounter.*`) and `#` for zero or more (`encounter.#`, `#`), as AMQP
 * topic exchanges do, which is what users of message brokers expect.
 */
import { InvalidArgumentError } from '../errors.js'

export const MAX_TOPIC_CHARS = 256
const WORD = /^[A-Za-z0-9_:/-]+$/

/** Throws InvalidArgumentError unless `topic` is a valid topic (no wildcards). */
export function checkTopic (topic: unknown): string {
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC_CHARS || !topic.split('.').every(w => WORD.test(w))) {
    throw new InvalidArgumentError(`an event topic must be dot-separated words of letters, digits and _:/- (at most ${MAX_TOPIC_CHARS} characters), got ${JSON.stringify(topic)}`)
  }
  return topic
}

/** A predicate on topics for `pattern`; throws InvalidArgumentError for a malformed pattern. */
export function compilePattern (pattern: unknown): (topic: string) => boolean {
  if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > MAX_TOPIC_CHARS) throw new InvalidArgumentError(`a subscription pattern must be a string of 1..${MAX_TOPIC_CHARS} characters, got ${JSON.stringify(pattern)}`)
  const words = pattern.split('.')
  let source = ''
  // Whether the next word needs a dot before it: not at the start, nor after a leading `#` (which ends in its own dot).
  let sep = false
  for (const [i, w] of words.entries()) {
    const dot = sep ? '\\.' : ''
    sep = true
    if (w === '*') source += `${dot}[^.]+`
    else if (w === '#' && words.length === 1) source += '[^.]+(?:\\.[^.]+)*'
    else if (w === '#' && i === 0) {
      source += '(?:[^.]+\\.)*'
      sep = false
    } else if (w === '#') source += '(?:\\.[^.]+)*'
    else if (WORD.test(w)) source += dot + w.replace(/[/-]/g, c => `\\${c}`)
    else throw new InvalidArgumentError(`pattern ${JSON.stringify(pattern)}: each word must be *, # or letters, digits and _:/-`)
  }
  const re = new RegExp(`^${source}$`)
  return topic => re.test(topic)
}
