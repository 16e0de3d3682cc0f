/**
 * The framework-neutral core of the SDK's guards, for adapters to other
 * frameworks (the Nest adapter uses it): read the bearer token, verify it and
 * the scopes, and build the RFC 6750 answer for a refusal, so every adapter
 * answers exactly as the Fastify and Express guards do.
 *
 * @example
 * import { authenticate, toRequirement } from '@rw3iss/auth-server-ts/guard';
 * const requirement = toRequirement(['gsku:publish'], 'myGuard');
 * const outcome = await authenticate(verifier, request.headers.authorization, requirement);
 * if ('response' in outcome) reply(outcome.response.status, outcome.response.headers, outcome.response.body);
 */
export { authenticate, bearerErrorResponse, bearerToken, toRequirement } from './lib/guard.js';
export type { GuardResponse, ScopeArguments } from './lib/guard.js';
