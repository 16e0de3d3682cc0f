import { AuthServerError, TokenVerificationError } from '../errors.js';
import type { ScopeRequirement, ServicePrincipal, ServiceTokenVerifier } from '../verifier.js';
import { normalizeRequiredScopes } from './scopes.js';

/** The arguments a guard factory takes after its verifier: scopes, or one requirement object. */
export type ScopeArguments = readonly string[] | readonly [ScopeRequirement];

/**
 * Called by a guard for every refused request, with the error (its `code`,
 * and `reason` saying why an `invalid_token` was refused) and the request.
 * For logs and metrics: the response never carries the reason. Errors it
 * throws are ignored.
 */
export type RefusalListener<Request> = (error: TokenVerificationError, request: Request) => void;

/** Calls a refusal listener; a faulty one must not change the answer. */
export function notifyRefused<Request>(listener: RefusalListener<Request> | undefined, error: TokenVerificationError, request: Request): void {
  try {
    listener?.(error, request);
  } catch {
    // ignored: see RefusalListener
  }
}

/** Turns `('a', 'b')` or `({ scopes, mode })` into a checked requirement, once per route. */
export function toRequirement(args: ReadonlyArray<string | ScopeRequirement>, label: string): ScopeRequirement {
  const [first] = args;
  if (args.length === 1 && typeof first === 'object' && first !== null) {
    const mode = first.mode ?? 'all';
    if (mode !== 'all' && mode !== 'any') throw new AuthServerError('invalid_options', `${label}: mode must be 'all' or 'any'`);
    return { scopes: normalizeRequiredScopes(first.scopes ?? [], `${label} scopes`), mode };
  }
  return { scopes: normalizeRequiredScopes(args as string[], `${label} scopes`), mode: 'all' };
}

const BEARER = /^Bearer(?: +(.*))?$/i;

/**
 * The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1).
 * Undefined (a missing token) without the Bearer scheme or with nothing after
 * it; anything else goes to the verifier, which refuses what is malformed.
 */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const token = BEARER.exec(authorization)?.[1]?.trim();
  return token === '' ? undefined : token;
}

/** What a guard sends back for a refused token. */
export interface GuardResponse {
  status: number;
  headers: Record<string, string>;
  body: { error: string; error_description: string; scope?: string };
}

/**
 * Maps a refused token to its RFC 6750 answer: status 401/403, a
 * `WWW-Authenticate` challenge and a JSON body `{ error, error_description, scope? }`
 * where `error` is the error's stable `code`.
 */
export function bearerErrorResponse(err: TokenVerificationError): GuardResponse {
  const body: GuardResponse['body'] = { error: err.code, error_description: err.description };
  if (err.code === 'insufficient_scope') body.scope = err.requiredScopes.join(' ');
  return {
    status: err.httpStatus,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'www-authenticate': err.wwwAuthenticate(),
    },
    body,
  };
}

/**
 * Verifies the request's bearer token. Resolves to the principal, or to the
 * response to send when the token is missing or refused; other errors reject.
 */
export async function authenticate(
  verifier: ServiceTokenVerifier,
  authorization: string | undefined,
  requirement: ScopeRequirement,
): Promise<{ principal: ServicePrincipal } | { response: GuardResponse; error: TokenVerificationError }> {
  try {
    return { principal: await verifier.verify(bearerToken(authorization), requirement) };
  } catch (err) {
    if (err instanceof TokenVerificationError) return { response: bearerErrorResponse(err), error: err };
    throw err;
  }
}
