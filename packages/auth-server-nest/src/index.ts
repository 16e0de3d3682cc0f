export { ServiceTokenModule, SERVICE_TOKEN_MODULE_OPTIONS } from './service-token.module.js';
export type { ServiceTokenModuleAsyncOptions, ServiceTokenModuleForRootOptions } from './service-token.module.js';
export type {
  CatalogFailurePolicy,
  CatalogOptions,
  PermissionDefinition,
  ServiceTokenModuleOptions,
} from './service-token.options.js';
export { ServiceTokenGuard, ServiceTokenRefusedException } from './service-token.guard.js';
export { InjectServiceTokens, InjectServiceTokenVerifier, Public, RequireScopes, ServicePrincipal } from './decorators.js';
export type { RequireScopesOptions } from './decorators.js';
export { CatalogRegistration } from './catalog-registration.js';
export type { CatalogRegistrationResult, CatalogRegistrationState } from './catalog-registration.js';
export { SERVICE_TOKEN_VERIFIER } from './constants.js';
export { ServiceTokenModuleError } from './errors.js';
export type { ServiceTokenModuleErrorCode } from './errors.js';
// The SDK's classes this module hands out, so an application imports them from one place.
export { ServiceTokenManager, TokenRequestError, TokenVerificationError } from '@rw3iss/auth-server-ts';
export type {
  ServiceTokenManagerOptions,
  ServiceTokenVerifier,
  ServiceTokenVerifierOptions,
} from '@rw3iss/auth-server-ts';
