/**
 * libp2p 3 calls `Promise.withResolvers` (ES2024), which Node 22 has and
 * Node 20 lacks. This module installs it once, before any libp2p code runs:
 * it must be the first import of every gossip/ module that imports a libp2p
 * package. It only fills the gap; a native implementation is left alone.
 */
interface Resolvers<T> {
  promise: Promise<T>
  resolve: (value: T | PromiseLike<T>) => void
  reject: (reason?: unknown) => void
}

const P = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> }

if (typeof P.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function withResolvers<T> (this: PromiseConstructor): Resolvers<T> {
      let resolve!: Resolvers<T>['resolve']
      let reject!: Resolvers<T>['reject']
      // `this` keeps subclass semantics, as the spec's Promise.withResolvers does.
      const promise = new this<T>((res, rej) => { resolve = res; reject = rej })
      return { promise, resolve, reject }
    }
  })
}

export {}
