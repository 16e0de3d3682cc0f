import { type CanActivate, type ExecutionContext, HttpException, Inject, Injectable, Optional } from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import type { ScopeRequirement, ServicePrincipal, ServiceTokenVerifier } from '@rw3iss/auth-server-ts';
import { authenticate, type GuardResponse } from '@rw3iss/auth-server-ts/guard';
import { PUBLIC_KEY, SCOPES_KEY, SERVICE_TOKEN_VERIFIER } from './constants.js';
import { invalidOptions } from './errors.js';

const NO_SCOPES: ScopeRequirement = Object.freeze({ scopes: [], mode: 'all' });

/**
 * What `ServiceTokenGuard` throws for a missing or refused token: an
 * `HttpException` whose response is the RFC 6750 body `{ error, error_description, scope? }`
 * (the guard has already set `WWW-Authenticate` and `Cache-Control: no-store`).
 * Nest's default exception filter sends it as is; a filter of yours that
 * rewrites `HttpException`s should let this one through unchanged.
 */
export class ServiceTokenRefusedException extends HttpException {
  /** Status, headers and body, exactly as the SDK's Fastify and Express guards send them. */
  readonly guardResponse: GuardResponse;

  constructor(guardResponse: GuardResponse) {
    super(guardResponse.body, guardResponse.status);
    this.guardResponse = guardResponse;
  }
}

/**
 * Lets a request through only with a valid service token (`Authorization: Bearer …`)
 * holding the scopes of `@RequireScopes()`, and puts the caller where
 * `@ServicePrincipal()` finds it. A refusal answers 401 or 403 with a
 * `WWW-Authenticate` challenge and a JSON body (RFC 6750 §3), byte for byte
 * what the SDK's Fastify and Express guards answer. `@Public()` opts a route out.
 * Works on `@nestjs/platform-express` and `@nestjs/platform-fastify`; refuses
 * non-HTTP contexts (fail closed).
 *
 * @example
 * // per controller or route
 * @UseGuards(ServiceTokenGuard) @Controller('items') class ItemsController {}
 * // or every route of the application
 * providers: [{ provide: APP_GUARD, useClass: ServiceTokenGuard }]
 */
@Injectable()
export class ServiceTokenGuard implements CanActivate {
  readonly #verifier: ServiceTokenVerifier;
  readonly #reflector: Reflector;
  readonly #adapterHost: HttpAdapterHost;

  constructor(
    @Optional() @Inject(SERVICE_TOKEN_VERIFIER) verifier: ServiceTokenVerifier | undefined,
    @Inject(Reflector) reflector: Reflector,
    @Inject(HttpAdapterHost) adapterHost: HttpAdapterHost,
  ) {
    if (verifier === undefined || verifier === null) {
      invalidOptions('ServiceTokenGuard needs ServiceTokenModule.forRoot({ verifier: { secret, issuer, audience } }) imported where the guard is used (or isGlobal: true)');
    }
    this.#verifier = verifier;
    this.#reflector = reflector;
    this.#adapterHost = adapterHost;
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const decided = this.#decide(context);
    if (decided === 'public') return true;
    if (context.getType() !== 'http') return false;
    const requirement = decided ?? NO_SCOPES;
    const http = context.switchToHttp();
    // Express's req and Fastify's request both carry Node's lower-cased headers.
    const request = http.getRequest<{ headers: Record<string, string | string[] | undefined>; servicePrincipal?: ServicePrincipal }>();
    const authorization = request.headers.authorization;
    const outcome = await authenticate(this.#verifier, typeof authorization === 'string' ? authorization : undefined, requirement);
    if ('principal' in outcome) {
      request.servicePrincipal = outcome.principal;
      return true;
    }
    const response = http.getResponse<unknown>();
    const adapter = this.#adapterHost.httpAdapter;
    for (const [name, value] of Object.entries(outcome.response.headers)) adapter.setHeader(response, name, value);
    throw new ServiceTokenRefusedException(outcome.response);
  }

  /**
   * What the decorators ask for: the route's own (`@RequireScopes()` or
   * `@Public()`) decide before its controller's, and `@RequireScopes()` wins
   * over `@Public()` at the same level. So a method with `@RequireScopes()` in
   * a `@Public()` controller is guarded (fail closed), as a route's own scopes
   * replace its controller's. Undefined: a valid token, no scope.
   */
  #decide(context: ExecutionContext): ScopeRequirement | 'public' | undefined {
    for (const target of [context.getHandler(), context.getClass()]) {
      const requirement = this.#reflector.get<ScopeRequirement | undefined>(SCOPES_KEY, target);
      if (requirement !== undefined) return requirement;
      if (this.#reflector.get<boolean | undefined>(PUBLIC_KEY, target) === true) return 'public';
    }
    return undefined;
  }
}
