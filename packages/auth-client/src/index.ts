/**
 * `@rw3iss/auth-client`: the admin SDK of the auth platform for browsers and
 * Node. Sign in, then manage service (machine-to-machine) credentials.
 *
 * It has no client_credentials grant on purpose: that grant needs the client
 * secret, which never belongs in a browser. Backends use
 * `@rw3iss/auth-server-ts` (`ServiceTokenManager`) for service tokens.
 */
export { createAuthClient } from './client.js';
export type { AuditApi, AuthApi, AuthClient, AuthClientOptions, PermissionsApi, ServicesApi } from './client.js';
export { AuthClientError } from './errors.js';
export type { AuthClientErrorCode, ErrorDetail, ServerErrorCode } from './errors.js';
export { createMemoryStorage } from './storage.js';
export type { TokenStorage } from './storage.js';
export type {
  AuditEvent,
  AuditListOptions,
  AuditPage,
  AuthUser,
  ClientSecretRecord,
  ChangePasswordRequest,
  CatalogSummary,
  CreateM2MClientRequest,
  CreateM2MClientResponse,
  FetchLike,
  FetchResponse,
  LoginRequest,
  LoginResponse,
  M2MClientFilters,
  M2MClientPage,
  M2MClientPageOptions,
  M2MClientRecord,
  M2MClientSecretRecord,
  M2MClientStatus,
  MeResponse,
  RevokeAllSessionsResponse,
  PermissionInput,
  PermissionRecord,
  RegisterCatalogRequest,
  RegisterCatalogResponse,
  RotateSecretOptions,
  RotateSecretResponse,
  ServerMetadata,
  UpdateM2MClientRequest,
} from './types.js';
