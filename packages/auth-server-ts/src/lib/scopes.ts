import { AuthServerError } from '../errors.js';

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). Keeping to it
// also makes scopes safe inside RFC 6750's quoted `scope="…"` attribute.
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** Checks each scope is an RFC 6749 scope-token; returns them sorted and de-duplicated. */
export function normalizeScopes(scopes: readonly string[], label: string): string[] {
  if (!Array.isArray(scopes)) throw new AuthServerError('invalid_options', `${label} must be an array of strings`);
  for (const scope of scopes) {
    if (typeof scope !== 'string' || !SCOPE_TOKEN.test(scope)) {
      throw new AuthServerError(
        'invalid_options',
        `${label} contains ${JSON.stringify(scope)}: a scope is a non-empty string without spaces, quotes or backslashes (RFC 6749 §3.3)`,
      );
    }
  }
  return [...new Set(scopes)].sort();
}

// The platform's scope rule (the auth server validates credentials' scopes with the same
// pattern): `service:permission`, lower-case, e.g. `gsku:publish`. A guard asking for
// anything else could never be satisfied by a token the server issues.
const PLATFORM_SCOPE = /^[a-z0-9][a-z0-9._-]*:[a-z0-9*][a-z0-9._:*-]*$/;
const MAX_SCOPE_LENGTH = 200;

/** {@link normalizeScopes}, and each scope must be one the auth server can issue (`service:permission`, lower-case). */
export function normalizeRequiredScopes(scopes: readonly string[], label: string): string[] {
  const normalized = normalizeScopes(scopes, label);
  for (const scope of normalized) {
    if (scope.length > MAX_SCOPE_LENGTH || !PLATFORM_SCOPE.test(scope)) {
      throw new AuthServerError(
        'invalid_options',
        `${label} contains ${JSON.stringify(scope)}, which the auth server never issues: a scope is a lower-case "service:permission" string of at most ${MAX_SCOPE_LENGTH} characters, e.g. "gsku:publish"`,
      );
    }
  }
  return normalized;
}
