/**
 * Ends an exhaustive switch: TypeScript rejects the call when a case is
 * missing, and it throws if a value the types rule out arrives anyway.
 */
export function assertNever (value: never, what: string): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(value)}`)
}
