import { createParamDecorator, type CustomDecorator, type ExecutionContext, Inject, SetMetadata } from '@nestjs/common';
import { ServiceTokenManager, type ServicePrincipal as Principal, type ScopeRequirement } from '@rw3iss/auth-server-ts';
import { toRequirement } from '@rw3iss/auth-server-ts/guard';
import { PUBLIC_KEY, SCOPES_KEY, SERVICE_TOKEN_VERIFIER } from './constants.js';
import { invalidOptions } from './errors.js';

/**
 * Opens a route (or every route of a controller) that `ServiceTokenGuard`
 * would otherwise protect, e.g. under a global `APP_GUARD`.
 *
 * @example
 * @Public() @Get('healthz') health() { return { ok: true }; }
 */
export const Public = (): CustomDecorator<string> => SetMetadata(PUBLIC_KEY, true);

/** The last argument of {@link RequireScopes}: how the scopes combine. */
export interface RequireScopesOptions {
  /** `'all'` (default): every scope is required; `'any'`: one of them is enough. */
  mode: 'all' | 'any';
}

/**
 * The scopes `ServiceTokenGuard` requires on a route or a controller (a
 * route's own decorator replaces its controller's). Checked once, when the
 * class is defined: a scope with spaces or quotes throws `invalid_options`.
 * Without it the guard still requires a valid service token.
 *
 * @example
 * @RequireScopes('gsku:publish')                                       // this scope
 * @RequireScopes('gsku:publish', 'gsku:read')                          // both
 * @RequireScopes('gsku:publish', 'gsku:admin', { mode: 'any' })        // one of them
 */
export function RequireScopes(...scopes: string[]): CustomDecorator<string>;
export function RequireScopes(...args: [...scopes: string[], options: RequireScopesOptions]): CustomDecorator<string>;
export function RequireScopes(...args: Array<string | RequireScopesOptions>): CustomDecorator<string> {
  const last = args.at(-1);
  const options = typeof last === 'object' && last !== null ? last : undefined;
  const scopes = options === undefined ? args : args.slice(0, -1);
  if (scopes.length === 0) invalidOptions('RequireScopes: name at least one scope (without it the guard requires any valid service token)');
  if (!scopes.every((s) => typeof s === 'string')) invalidOptions('RequireScopes: scopes are strings; only the last argument may be { mode }');
  const requirement: ScopeRequirement = toRequirement([{ scopes: scopes as string[], mode: options?.mode ?? 'all' }], 'RequireScopes');
  return SetMetadata(SCOPES_KEY, requirement);
}

/** The verified caller, as `@ServicePrincipal()` injects it. */
export type ServicePrincipal = Principal;

/**
 * Injects the verified caller (`clientId`, `serviceName`, `scopes`, `claims`)
 * into a handler behind `ServiceTokenGuard`. On a route the guard did not
 * check (no guard, or `@Public()`) it throws, so a handler never runs with a
 * principal it assumes was verified; `@ServicePrincipal({ optional: true })` gives `undefined` there instead.
 *
 * @example
 * @Post('publish') @RequireScopes('gsku:publish')
 * publish(@ServicePrincipal() caller: ServicePrincipal) { return { by: caller.clientId }; }
 */
export const ServicePrincipal = createParamDecorator((data: { optional?: boolean } | undefined, context: ExecutionContext): Principal | undefined => {
  const principal = (context.switchToHttp().getRequest() as { servicePrincipal?: Principal }).servicePrincipal;
  if (principal === undefined && data?.optional !== true) {
    throw new Error('@ServicePrincipal() on a route that ServiceTokenGuard did not check: add the guard, or use @ServicePrincipal({ optional: true })');
  }
  return principal;
});

/**
 * Injects the module's `ServiceTokenManager` (calling side). Same as injecting the class itself.
 *
 * @example constructor(@InjectServiceTokens() private readonly tokens: ServiceTokenManager) {}
 */
export const InjectServiceTokens = (): PropertyDecorator & ParameterDecorator => Inject(ServiceTokenManager);

/**
 * Injects the module's `ServiceTokenVerifier` (receiving side), to verify a token by hand.
 *
 * @example constructor(@InjectServiceTokenVerifier() private readonly verifier: ServiceTokenVerifier) {}
 */
export const InjectServiceTokenVerifier = (): PropertyDecorator & ParameterDecorator => Inject(SERVICE_TOKEN_VERIFIER);
