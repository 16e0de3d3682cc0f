import {
  createServiceTokenVerifier,
  ServiceTokenManager,
  type ServiceTokenManagerOptions,
  type ServiceTokenVerifier,
  type ServiceTokenVerifierOptions,
} from '@rw3iss/auth-server-ts';
import { invalidOptions, ServiceTokenModuleError } from './errors.js';

/** The longest delay setTimeout honours. */
const MAX_TIMER_MS = 2_147_483_647;

/** One permission of a service's catalog, as `POST /api/v1/admin/permissions/register` takes it. */
export interface PermissionDefinition {
  /** The scope string tokens carry, e.g. `gsku:publish`. */
  code: string;
  /** A human-readable name. */
  name: string;
  description?: string;
  resource?: string;
  action?: string;
  category?: string;
}

/**
 * What happens when the catalog cannot be registered at boot.
 *
 * - `'fail'`: transient failures (network, timeout, 429, 5xx) are retried up to
 *   `retry.maxAttempts` times, then `app.init()` / `app.listen()` rejects and the service does not start.
 * - `'warn'`: the failure is logged and registration is retried in the background
 *   with exponential backoff until it succeeds or the application closes.
 */
export type CatalogFailurePolicy = 'fail' | 'warn';

/** The service's permission catalog, registered at `onApplicationBootstrap` with the service's own credential. */
export interface CatalogOptions {
  /** The service whose catalog this is, e.g. `gsku`. */
  service: string;
  /** The whole catalog: the server upserts these and prunes codes no longer listed. */
  permissions: readonly PermissionDefinition[];
  /** Default `'fail'`. */
  onFailure?: CatalogFailurePolicy;
  /**
   * The registration route. Default: `admin/permissions/register` next to the
   * manager's `tokenEndpoint` (`…/api/v1/oauth/token` → `…/api/v1/admin/permissions/register`),
   * or `/api/v1/admin/permissions/register` on its `serverUrl`. Required when `manager` is an instance.
   */
  url?: string | URL;
  /** Scopes of the token the registration is sent with. Default `['auth:catalog:<service>']`. */
  scopes?: readonly string[];
  retry?: {
    /** `'fail'` policy: attempts in total before the boot fails. Default 3. */
    maxAttempts?: number;
    /** First backoff delay; it doubles each attempt, with jitter. Default 1 000 ms. */
    baseDelayMs?: number;
    /** Backoff ceiling. Default 300 000 ms (5 minutes). */
    maxDelayMs?: number;
  };
}

/**
 * Options of `ServiceTokenModule.forRoot()` (and what `forRootAsync()`'s factory returns).
 * Give `verifier` to receive service tokens, `manager` to call other services, or both.
 */
export interface ServiceTokenModuleOptions {
  /**
   * Receiving side: the options of `createServiceTokenVerifier` (secret, issuer,
   * audience, `revocation`, …), or a verifier you created. Needed by `ServiceTokenGuard`.
   * A verifier the module creates is closed (its revocation poller stopped) when the
   * application closes; one you pass in is yours to close.
   */
  verifier?: ServiceTokenVerifierOptions | ServiceTokenVerifier;
  /**
   * Calling side: the options of `ServiceTokenManager` (tokenEndpoint or serverUrl,
   * clientId, clientSecret, scopes, …), or a manager you created. A manager the
   * module creates is closed when the application closes; one you pass in is yours to close.
   */
  manager?: ServiceTokenManagerOptions | ServiceTokenManager;
  /** The permission catalog to register at boot. Needs `manager`. */
  catalog?: CatalogOptions;
}

export interface ResolvedCatalog {
  service: string;
  permissions: PermissionDefinition[];
  onFailure: CatalogFailurePolicy;
  url: URL;
  scopes: string[];
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** The options checked once, with the verifier and manager they describe. */
export interface ResolvedOptions {
  verifier: ServiceTokenVerifier | undefined;
  manager: ServiceTokenManager | undefined;
  /** Whether the module created the manager (and so closes it). */
  ownsManager: boolean;
  /** The module created the verifier (from options): it closes it (its revocation poller) on shutdown. */
  ownsVerifier: boolean;
  catalog: ResolvedCatalog | undefined;
}

const PERMISSION_FIELDS = new Set(['code', 'name', 'description', 'resource', 'action', 'category']);

export function resolveOptions(options: ServiceTokenModuleOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) invalidOptions('ServiceTokenModule: options must be an object');
  const verifier = options.verifier === undefined ? undefined : toVerifier(options.verifier);
  const ownsVerifier = verifier !== undefined && verifier !== options.verifier;
  let manager: ServiceTokenManager | undefined;
  let ownsManager = false;
  if (options.manager instanceof ServiceTokenManager || isManagerLike(options.manager)) {
    manager = options.manager as ServiceTokenManager;
  } else if (options.manager !== undefined) {
    manager = new ServiceTokenManager(options.manager);
    ownsManager = true;
  }
  const catalog = options.catalog === undefined ? undefined : resolveCatalog(options.catalog, options.manager);
  return { verifier, manager, ownsManager, ownsVerifier, catalog };
}

function toVerifier(value: ServiceTokenVerifierOptions | ServiceTokenVerifier): ServiceTokenVerifier {
  if (typeof (value as ServiceTokenVerifier)?.verify === 'function') return value as ServiceTokenVerifier;
  return createServiceTokenVerifier(value as ServiceTokenVerifierOptions);
}

function isManagerLike(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as ServiceTokenManager).getToken === 'function';
}

function resolveCatalog(catalog: CatalogOptions, manager: ServiceTokenModuleOptions['manager']): ResolvedCatalog {
  const label = 'ServiceTokenModule: catalog';
  if (typeof catalog !== 'object' || catalog === null) invalidOptions(`${label} must be an object`);
  if (manager === undefined) invalidOptions(`${label} needs manager options: the catalog is registered with the service's own credential`);
  const { service, permissions } = catalog;
  if (typeof service !== 'string' || service.trim() === '') invalidOptions(`${label}.service must be a non-empty string`);
  if (!Array.isArray(permissions)) invalidOptions(`${label}.permissions must be an array`);
  const seen = new Set<string>();
  const checked = permissions.map((permission, i): PermissionDefinition => {
    const where = `${label}.permissions[${i}]`;
    if (typeof permission !== 'object' || permission === null) invalidOptions(`${where} must be an object`);
    for (const [key, value] of Object.entries(permission)) {
      if (!PERMISSION_FIELDS.has(key)) invalidOptions(`${where} has an unknown field ${JSON.stringify(key)}`);
      if (value !== undefined && typeof value !== 'string') invalidOptions(`${where}.${key} must be a string`);
    }
    if (!permission.code) invalidOptions(`${where}.code is required`);
    if (!permission.name) invalidOptions(`${where}.name is required`);
    if (seen.has(permission.code)) invalidOptions(`${where}.code ${JSON.stringify(permission.code)} is listed twice`);
    seen.add(permission.code);
    // Only the fields the route takes, in a fresh object the caller cannot change later.
    return Object.fromEntries(Object.entries(permission).filter(([, value]) => value !== undefined)) as unknown as PermissionDefinition;
  });

  const onFailure = catalog.onFailure ?? 'fail';
  if (onFailure !== 'fail' && onFailure !== 'warn') invalidOptions(`${label}.onFailure must be 'fail' or 'warn'`);
  const scopes = catalog.scopes ?? [`auth:catalog:${service}`];
  if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string' && s !== '')) {
    invalidOptions(`${label}.scopes must be an array of scope strings`);
  }
  const retry = catalog.retry ?? {};
  const maxAttempts = retry.maxAttempts ?? 3;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) invalidOptions(`${label}.retry.maxAttempts must be an integer ≥ 1`);
  const baseDelayMs = retry.baseDelayMs ?? 1_000;
  const maxDelayMs = retry.maxDelayMs ?? 300_000;
  // Waited with setTimeout, which fires at once past 2^31 − 1 ms (about 24.8 days): the retries would run in a loop.
  if (!(Number.isFinite(baseDelayMs) && baseDelayMs >= 0 && baseDelayMs <= MAX_TIMER_MS)) invalidOptions(`${label}.retry.baseDelayMs must be a number of ms from 0 to ${MAX_TIMER_MS}`);
  if (!(Number.isFinite(maxDelayMs) && maxDelayMs >= baseDelayMs && maxDelayMs <= MAX_TIMER_MS)) invalidOptions(`${label}.retry.maxDelayMs must be a number of ms from baseDelayMs to ${MAX_TIMER_MS}`);

  return {
    service,
    permissions: checked,
    onFailure,
    url: catalogUrl(catalog.url, manager),
    scopes: [...scopes],
    maxAttempts,
    baseDelayMs,
    maxDelayMs,
  };
}

const REGISTER_PATH = '/api/v1/admin/permissions/register';

function catalogUrl(explicit: string | URL | undefined, manager: ServiceTokenModuleOptions['manager']): URL {
  const label = 'ServiceTokenModule: catalog.url';
  let url: URL;
  try {
    if (explicit !== undefined) {
      url = new URL(String(explicit));
    } else if (manager instanceof ServiceTokenManager || isManagerLike(manager)) {
      return invalidOptions(`${label} is required when manager is an instance (the module cannot read its endpoint)`);
    } else {
      const { tokenEndpoint, serverUrl } = manager as ServiceTokenManagerOptions;
      // The platform serves the token endpoint at …/api/v1/oauth/token: the route sits beside it.
      url = tokenEndpoint !== undefined ? new URL('../admin/permissions/register', tokenEndpoint) : new URL(REGISTER_PATH, serverUrl);
    }
  } catch (err) {
    if (err instanceof ServiceTokenModuleError) throw err;
    return invalidOptions(`${label} must be an absolute URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') invalidOptions(`${label} must be an http(s) URL`);
  // The registration carries a service token: plain http only where the manager allows it for its own endpoint.
  const allowInsecureHttp = !isManagerLike(manager) && (manager as ServiceTokenManagerOptions).allowInsecureHttp === true;
  if (url.protocol === 'http:' && !allowInsecureHttp && !isLoopback(url.hostname)) {
    invalidOptions(`${label} uses plain http to a remote host, which would send a service token unencrypted: use https, or set manager.allowInsecureHttp: true`);
  }
  return url;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}
