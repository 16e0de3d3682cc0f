/**
 * Where the client keeps the access token. Methods may be synchronous or
 * return promises, so `localStorage`, `sessionStorage`, a cookie helper or
 * an encrypted store can all be adapted in three lines.
 *
 * @example
 * // Survives reloads, but any script on the page can read it (XSS): prefer the default.
 * const storage: TokenStorage = {
 *   get: () => sessionStorage.getItem('auth.token'),
 *   set: (token) => sessionStorage.setItem('auth.token', token),
 *   remove: () => sessionStorage.removeItem('auth.token'),
 * };
 */
export interface TokenStorage {
  get(): string | null | undefined | Promise<string | null | undefined>;
  set(token: string): void | Promise<void>;
  remove(): void | Promise<void>;
}

/** The default storage: the token lives in this object only, and is gone on reload. */
export function createMemoryStorage(): TokenStorage {
  let token: string | undefined;
  return {
    get: () => token,
    set: (value) => {
      token = value;
    },
    remove: () => {
      token = undefined;
    },
  };
}
