import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AuthServerError } from './errors.js';
import { authenticate, notifyRefused, type RefusalListener, toRequirement } from './lib/guard.js';
import {
  createServiceTokenVerifier,
  type ScopeRequirement,
  type ServicePrincipal,
  type ServiceTokenVerifier,
  type ServiceTokenVerifierOptions,
} from './verifier.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Set by `serviceTokenPlugin`. */
    serviceTokenVerifier: ServiceTokenVerifier;
  }
  interface FastifyRequest {
    /** The verified service; set by `requireServiceToken`, `null` on routes without it. */
    servicePrincipal: ServicePrincipal | null;
  }
}

/**
 * Options of {@link serviceTokenPlugin}: a verifier, or the options to create one,
 * and optionally `onRefused`.
 */
export type ServiceTokenPluginOptions = ({ verifier: ServiceTokenVerifier } | ServiceTokenVerifierOptions) & {
  /**
   * Called for every refused request with the error (`code`, `reason`) and the
   * request. Default: one `info` line on `request.log`, "service token refused",
   * with `code`, `reason` and `requiredScopes`. The response never carries the reason.
   */
  onRefused?: RefusalListener<FastifyRequest>;
};

const REFUSAL_LISTENER = Symbol('serviceTokenRefusalListener');

/** The default listener: why a token was refused, in the request's log (never the token). */
const logRefusal: RefusalListener<FastifyRequest> = (error, request) => {
  request.log.info(
    { code: error.code, reason: error.reason, requiredScopes: error.code === 'insufficient_scope' ? error.requiredScopes : undefined },
    'service token refused',
  );
};

const plugin: FastifyPluginAsync<ServiceTokenPluginOptions> = async (app, options) => {
  const { onRefused = logRefusal, ...rest } = options;
  if (typeof onRefused !== 'function') throw new AuthServerError('invalid_options', 'serviceTokenPlugin: onRefused must be a function');
  const verifier = 'verifier' in rest ? rest.verifier : createServiceTokenVerifier(rest);
  app.decorate('serviceTokenVerifier', verifier);
  app.decorate(REFUSAL_LISTENER, onRefused);
  app.decorateRequest('servicePrincipal', null);
};

/**
 * Fastify plugin that makes a service-token verifier available to
 * {@link requireServiceToken} (as `app.serviceTokenVerifier`) and declares
 * `request.servicePrincipal`. Not encapsulated: register it once at the root.
 *
 * @example
 * await app.register(serviceTokenPlugin, { secret, issuer: 'https://auth.example.com', audience: 'billing-api' });
 * // or with a verifier you already have:
 * await app.register(serviceTokenPlugin, { verifier });
 * // why tokens are refused, your way (the default is an info line on request.log):
 * await app.register(serviceTokenPlugin, { verifier, onRefused: (err, request) => request.log.warn({ reason: err.reason }, 'refused') });
 */
export const serviceTokenPlugin = fp(plugin, { name: '@rw3iss/auth-server-ts', fastify: '5.x' });

/**
 * A Fastify hook that only lets a service token with the given scopes through: use it as the
 * route's `onRequest` (refused before the body is read; `preHandler` works too, after parsing).
 */
export type ServiceTokenPreHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/**
 * Per-route guard: verifies the `Authorization: Bearer` service token and the
 * scopes, sets `request.servicePrincipal`, or answers 401/403 per RFC 6750 §3
 * with a `WWW-Authenticate` header and a JSON body. Needs {@link serviceTokenPlugin}.
 * As `onRequest`, a caller without a valid token costs no body parsing.
 *
 * @example
 * app.post('/publish', { onRequest: requireServiceToken('gsku:publish') }, async (request) => {
 *   return { by: request.servicePrincipal!.clientId };
 * });
 * // one of several scopes:
 * requireServiceToken({ scopes: ['gsku:publish', 'gsku:admin'], mode: 'any' });
 */
export function requireServiceToken(...scopes: string[]): ServiceTokenPreHandler;
export function requireServiceToken(requirement: ScopeRequirement): ServiceTokenPreHandler;
export function requireServiceToken(...args: Array<string | ScopeRequirement>): ServiceTokenPreHandler {
  const requirement = toRequirement(args, 'requireServiceToken');
  return async function serviceTokenGuard(request, reply) {
    const verifier = request.server.serviceTokenVerifier;
    if (verifier === undefined) {
      throw new AuthServerError('invalid_options', 'requireServiceToken needs serviceTokenPlugin to be registered first');
    }
    const outcome = await authenticate(verifier, request.headers.authorization, requirement);
    if ('response' in outcome) {
      notifyRefused((request.server as unknown as Record<symbol, RefusalListener<FastifyRequest>>)[REFUSAL_LISTENER], outcome.error, request);
      const { status, headers, body } = outcome.response;
      return reply.code(status).headers(headers).send(body);
    }
    request.servicePrincipal = outcome.principal;
    return undefined;
  };
}
