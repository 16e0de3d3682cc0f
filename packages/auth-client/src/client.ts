import { AuthClientError } from './errors.js';
import { createRequest } from './lib/http.js';
import { createMemoryStorage, type TokenStorage } from './storage.js';
import type {
  AuditListOptions,
  AuditPage,
  ChangePasswordRequest,
  ClientSecretRecord,
  CreateM2MClientRequest,
  CreateM2MClientResponse,
  FetchLike,
  LoginRequest,
  LoginResponse,
  M2MClientFilters,
  M2MClientPage,
  M2MClientPageOptions,
  M2MClientRecord,
  M2MClientSecretRecord,
  MeResponse,
  RevokeAllSessionsResponse,
  PermissionRecord,
  CatalogSummary,
  RegisterCatalogRequest,
  RegisterCatalogResponse,
  RotateSecretOptions,
  RotateSecretResponse,
  ServerMetadata,
  UpdateM2MClientRequest,
} from './types.js';

/** Options of {@link createAuthClient}. */
export interface AuthClientOptions {
  /** The API root including its version prefix, e.g. `https://auth.example.com/api/v1`. */
  apiBaseUrl: string;
  /**
   * Identifies the calling application; sent as the `X-App-Code` header on
   * every request. Informational: the server does not require or check it.
   */
  appCode: string;
  /** The `fetch` to use. Default: the platform's `globalThis.fetch` (browsers, Node ≥ 18). */
  fetch?: FetchLike;
  /** Where the access token is kept. Default: in memory ({@link createMemoryStorage}). */
  storage?: TokenStorage;
}

/** Sign-in of the admin user whose token the client sends. */
export interface AuthApi {
  /**
   * Signs in with email and password (`POST /auth/login`) and stores the
   * access token, which every later call sends as `Authorization: Bearer`.
   * Wrong credentials reject with `unauthorized` and leave the stored token alone.
   */
  login(credentials: LoginRequest): Promise<LoginResponse>;
  /**
   * Signs out: ends the session on the server (`POST /auth/logout`), then
   * forgets the stored token, so a copy of it no longer works either.
   * Resolves at once when no token is stored; a session that already ended
   * or expired is not an error. If the server cannot be reached the token is
   * still forgotten locally and the error (`network_error`, …) is rethrown:
   * the session then ends only when it expires.
   */
  logout(): Promise<void>;
  /**
   * Signs out everywhere: ends every session of the signed-in user, this one
   * included (`POST /auth/sessions/revoke-all`), and forgets the stored token.
   * Resolves to how many sessions were ended.
   */
  revokeAllSessions(): Promise<RevokeAllSessionsResponse>;
  /**
   * Changes the signed-in user's password (`POST /auth/password`). The
   * user's other sessions end; this one stays signed in. A wrong current
   * password rejects with `validation_failed` (detail `body.current_password`).
   */
  changePassword(request: ChangePasswordRequest): Promise<void>;
  /** The signed-in user and roles (`GET /auth/me`); `unauthorized` if signed out. */
  me(): Promise<MeResponse>;
}

/**
 * The service-credential registry (`/admin/m2m-clients`). Every call needs a
 * signed-in user with the `system_admin` role: others get `forbidden` (403),
 * no or an expired token `unauthorized` (401).
 *
 * There is deliberately no client_credentials grant here: it needs the
 * client secret, which never belongs in a browser. Services obtain their
 * tokens from their own backend with `@rw3iss/auth-server-ts`
 * (`ServiceTokenManager`) or `POST /oauth/token` (RFC 6749 §4.4).
 */
export interface ServicesApi {
  /**
   * Creates a credential (`POST /admin/m2m-clients`). The `client_secret` in
   * the answer is shown exactly once; store it in a secret manager now.
   * A taken `client_id` rejects with `conflict`, a malformed body with
   * `validation_failed` and field `details`.
   */
  create(request: CreateM2MClientRequest): Promise<CreateM2MClientResponse>;
  /**
   * Credentials, newest first (`GET /admin/m2m-clients`, unwrapped from `{clients}`):
   * every one that is not revoked, or those matching `filters`, in one answer.
   *
   * @example
   * const disabled = await client.services.list({ status: 'disabled', include_revoked: true });
   */
  list(filters?: M2MClientFilters): Promise<M2MClientRecord[]>;
  /**
   * One page of the same listing: pass the answer's `next_cursor` as `cursor`
   * for the next page, until it is `null`. The order is stable (creation time,
   * then id), so pages never repeat or skip a credential.
   */
  listPage(options: M2MClientPageOptions): Promise<M2MClientPage>;
  /** One credential by its record `id` (a UUID, not the `client_id`), revoked ones included; `not_found` if unknown. */
  get(id: string): Promise<M2MClientRecord>;
  /** One credential by its `client_id` (`GET /admin/m2m-clients/by-client-id/:client_id`), revoked ones included; `not_found` if unknown. */
  getByClientId(clientId: string): Promise<M2MClientRecord>;
  /** Changes name, description, scopes, allowed_audiences or status (`PATCH /admin/m2m-clients/:id`); returns the new record. */
  update(id: string, changes: UpdateM2MClientRequest): Promise<M2MClientRecord>;
  /**
   * Revokes a credential (`DELETE /admin/m2m-clients/:id`): soft and
   * idempotent. It stops obtaining tokens at once, leaves `list()`, and
   * `get()` still shows it with `revoked_at` set. Tokens already issued stay
   * valid until they expire.
   */
  revoke(id: string): Promise<void>;
  /**
   * Adds a secret to a credential (`POST /admin/m2m-clients/:id/secrets`): the
   * rotation step that keeps the `client_id`. The `client_secret` in the answer
   * is shown exactly once. The credential's current secret keeps working until
   * it is deleted or, with `expire_previous_in` (seconds), until then. At most
   * two live secrets: a third rejects with `secret_limit`; a revoked credential
   * with `conflict`.
   *
   * @example
   * const { secret, client_secret } = await client.services.rotateSecret(svc.id, { expire_previous_in: 86400 });
   */
  rotateSecret(id: string, opts?: RotateSecretOptions): Promise<RotateSecretResponse>;
  /** The credential's secrets, newest first, metadata only (`GET /admin/m2m-clients/:id/secrets`, unwrapped from `{secrets}`). */
  secrets(id: string): Promise<M2MClientSecretRecord[]>;
  /**
   * Deletes one secret (`DELETE /admin/m2m-clients/:id/secrets/:secretId`): it
   * authenticates no more from the next grant on. Never the credential's last
   * live secret (`last_secret`).
   */
  deleteSecret(id: string, secretId: string): Promise<void>;
}

/**
 * Permission catalogs (`/admin/permissions`): the scopes each service
 * defines. Once a namespace has a catalog, credentials may only hold scopes
 * it defines (`unknown_scope` otherwise).
 */
export interface PermissionsApi {
  /**
   * Reconciles a service's catalog (`POST /admin/permissions/register`):
   * upserts every declared permission and prunes the service's others.
   * Idempotent. Needs a system_admin, or a service token (put it in the
   * client's `storage`) whose credential holds `auth:catalog:<service>`.
   * A code another catalog owns rejects with `conflict` naming the owner.
   */
  register(catalog: RegisterCatalogRequest): Promise<RegisterCatalogResponse>;
  /** Every registered permission, by service then code, or one service's (`GET /admin/permissions`, unwrapped). */
  list(filter?: { service?: string }): Promise<PermissionRecord[]>;
  /** Each registered catalog with its count, last change and who made it (`GET /admin/permissions/services`, unwrapped). */
  services(): Promise<CatalogSummary[]>;
}

/** The audit trail of admin actions (`GET /admin/audit-events`), system_admin only. */
export interface AuditApi {
  /**
   * One page of audit entries, newest first: pass the answer's `next_cursor`
   * as `cursor` for the next, older page until it is `null`.
   *
   * @example
   * const { events } = await client.audit.list({ target: credential.id }); // one credential's trail
   */
  list(options?: AuditListOptions): Promise<AuditPage>;
}

/** The client {@link createAuthClient} returns. */
export interface AuthClient {
  /**
   * Checks that an auth server compatible with this SDK answers: reads the
   * RFC 8414 metadata at `<server root>/.well-known/oauth-authorization-server`
   * and checks it offers the client_credentials grant, that its `issuer` is
   * that server root (RFC 8414 §3.3: not metadata of another origin) and that
   * its token endpoint is exactly `<apiBaseUrl>/oauth/token` (same origin, same
   * API version). The server root is `apiBaseUrl` without its trailing `/api/v<n>`.
   * Resolves to the metadata; rejects with `incompatible_server`,
   * `network_error` or the server's error. Optional, but a cheap early failure.
   */
  ready(): Promise<ServerMetadata>;
  auth: AuthApi;
  services: ServicesApi;
  permissions: PermissionsApi;
  audit: AuditApi;
}

/** The array under `key` of a list answer; `invalid_response` when there is none. */
function unwrap<T>(answer: Record<string, unknown>, key: string, what: string): T[] {
  const items = answer?.[key];
  if (!Array.isArray(items)) throw new AuthClientError('invalid_response', `${what} answered without a ${key} array`, { status: 200 });
  return items as T[];
}

/** Header-safe: printable ASCII, no leading or trailing space. */
const APP_CODE = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/;

/**
 * Creates an admin client for the auth platform: sign in, then manage
 * service (machine-to-machine) credentials. Dependency-free, on the
 * platform's `fetch`, so it runs in browsers and Node 20.
 *
 * Throws a `TypeError` for an `apiBaseUrl` that is not an http(s) URL ending
 * in the API version prefix (`/api/v1`), or an empty `appCode`.
 *
 * @example
 * const client = createAuthClient({ apiBaseUrl: 'https://auth.example.com/api/v1', appCode: 'my-admin-ui' });
 * await client.ready();
 * await client.auth.login({ email, password });
 * const { client: svc, client_secret } = await client.services.create({ client_id: 'billing-svc', name: 'Billing backend', scopes: ['gsku:publish'] });
 */
export function createAuthClient(options: AuthClientOptions): AuthClient {
  let base: URL;
  try {
    base = new URL(options.apiBaseUrl);
  } catch {
    throw new TypeError(`apiBaseUrl must be an absolute URL, got ${JSON.stringify(options.apiBaseUrl)}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError('apiBaseUrl must be an http or https URL');
  if (typeof options.appCode !== 'string' || !APP_CODE.test(options.appCode)) {
    throw new TypeError('appCode must be a non-empty string of printable ASCII characters');
  }

  const apiPath = base.pathname.replace(/\/+$/, '');
  if (!/\/api\/v\d+$/.test(apiPath) || base.search || base.hash) {
    throw new TypeError(
      `apiBaseUrl must be the API root with its version prefix and nothing after it, e.g. ${base.origin}${apiPath}/api/v1; got ${JSON.stringify(options.apiBaseUrl)}`,
    );
  }
  const api = `${base.origin}${apiPath}`;
  const root = `${base.origin}${apiPath.replace(/\/api\/v\d+$/, '')}`;
  const storage = options.storage ?? createMemoryStorage();
  // Looked up per call, unbound: a browser's window.fetch throws "Illegal invocation" when called as a method of another object.
  const fetch: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const request = createRequest(fetch, storage, options.appCode);
  // Forgets the token a sign-out was for, unless a login stored another meanwhile.
  const forget = async (token: string | null | undefined) => {
    if (token && (await storage.get()) === token) await storage.remove();
  };
  const clientUrl = (id: string) => `${api}/admin/m2m-clients/${encodeURIComponent(id)}`;

  async function listing(options: M2MClientFilters & { limit?: number; cursor?: string }): Promise<M2MClientPage> {
    const query = new URLSearchParams();
    // Only the parameters the server knows, and only when given: it refuses unknown ones.
    for (const key of ['status', 'scope', 'client_id_prefix', 'include_revoked', 'limit', 'cursor'] as const) {
      const value = options[key];
      if (value !== undefined) query.set(key, String(value));
    }
    const search = query.toString();
    const url = `${api}/admin/m2m-clients${search ? `?${search}` : ''}`;
    const answer = await request<{ clients?: unknown; next_cursor?: unknown }>('GET', url);
    if (!Array.isArray(answer.clients)) {
      throw new AuthClientError('invalid_response', `GET ${api}/admin/m2m-clients answered without a clients array`, { status: 200 });
    }
    return { clients: answer.clients as M2MClientRecord[], next_cursor: typeof answer.next_cursor === 'string' ? answer.next_cursor : null };
  }

  return {
    async ready() {
      const url = `${root}/.well-known/oauth-authorization-server`;
      let metadata: Partial<ServerMetadata>;
      try {
        metadata = await request<Partial<ServerMetadata>>('GET', url, { auth: false });
      } catch (err) {
        if (err instanceof AuthClientError && (err.code === 'not_found' || err.code === 'invalid_response')) {
          throw new AuthClientError('incompatible_server', `No authorization server metadata at ${url}`, { status: err.status, cause: err });
        }
        throw err;
      }
      const grants = Array.isArray(metadata.grant_types_supported) ? metadata.grant_types_supported : [];
      if (typeof metadata.issuer !== 'string' || !grants.includes('client_credentials')) {
        throw new AuthClientError('incompatible_server', `${url} does not describe an authorization server with the client_credentials grant`, { status: 200 });
      }
      // RFC 8414 §3.3: the metadata must be about the server it was fetched from.
      if (metadata.issuer.replace(/\/+$/, '') !== root) {
        throw new AuthClientError('incompatible_server', `${url} names the issuer ${JSON.stringify(metadata.issuer)}, not ${root}: use the server's own URL (its JWT_ISSUER) in apiBaseUrl`, {
          status: 200,
        });
      }
      if (metadata.token_endpoint !== `${api}/oauth/token`) {
        throw new AuthClientError('incompatible_server', `The server's token endpoint (${String(metadata.token_endpoint)}) is not ${api}/oauth/token: wrong apiBaseUrl or API version`, {
          status: 200,
        });
      }
      return metadata as ServerMetadata;
    },

    auth: {
      async login(credentials) {
        const answer = await request<LoginResponse>('POST', `${api}/auth/login`, { body: credentials, auth: false });
        if (typeof answer.tokens?.access_token !== 'string') {
          throw new AuthClientError('invalid_response', `POST ${api}/auth/login answered without an access token`, { status: 200 });
        }
        await storage.set(answer.tokens.access_token);
        return answer;
      },
      async logout() {
        const token = await storage.get();
        if (!token) return;
        try {
          await request<void>('POST', `${api}/auth/logout`);
        } catch (err) {
          // 401: the server holds no session for this token; signed out all the same.
          if (!(err instanceof AuthClientError && err.code === 'unauthorized')) throw err;
        } finally {
          await forget(token);
        }
      },
      async revokeAllSessions() {
        const token = await storage.get();
        const answer = await request<RevokeAllSessionsResponse>('POST', `${api}/auth/sessions/revoke-all`);
        await forget(token);
        return answer;
      },
      changePassword: (body) => request<void>('POST', `${api}/auth/password`, { body }),
      me: () => request<MeResponse>('GET', `${api}/auth/me`),
    },

    services: {
      create: (body) => request<CreateM2MClientResponse>('POST', `${api}/admin/m2m-clients`, { body }),
      async list(filters = {}) {
        const { status, scope, client_id_prefix, include_revoked } = filters;
        return (await listing({ status, scope, client_id_prefix, include_revoked })).clients;
      },
      listPage: (options) => listing(options),
      get: (id) => request<M2MClientRecord>('GET', clientUrl(id)),
      getByClientId: (clientId) => request<M2MClientRecord>('GET', `${api}/admin/m2m-clients/by-client-id/${encodeURIComponent(clientId)}`),
      update: (id, body) => request<M2MClientRecord>('PATCH', clientUrl(id), { body }),
      revoke: (id) => request<void>('DELETE', clientUrl(id)),
      rotateSecret: (id, opts = {}) => request<RotateSecretResponse>('POST', `${clientUrl(id)}/secrets`, { body: opts }),
      async secrets(id) {
        return unwrap<M2MClientSecretRecord>(await request<{ secrets?: unknown }>('GET', `${clientUrl(id)}/secrets`), 'secrets', `GET ${api}/admin/m2m-clients/:id/secrets`);
      },
      deleteSecret: (id, secretId) => request<void>('DELETE', `${clientUrl(id)}/secrets/${encodeURIComponent(secretId)}`),
    },

    permissions: {
      register: (body) => request<RegisterCatalogResponse>('POST', `${api}/admin/permissions/register`, { body }),
      async list(filter = {}) {
        const query = filter.service === undefined ? '' : `?service=${encodeURIComponent(filter.service)}`;
        return unwrap<PermissionRecord>(await request<{ permissions?: unknown }>('GET', `${api}/admin/permissions${query}`), 'permissions', `GET ${api}/admin/permissions`);
      },
      async services() {
        return unwrap<CatalogSummary>(await request<{ services?: unknown }>('GET', `${api}/admin/permissions/services`), 'services', `GET ${api}/admin/permissions/services`);
      },
    },

    audit: {
      async list(options = {}) {
        const query = new URLSearchParams();
        // Only the parameters the server knows, and only when given: it refuses unknown ones.
        for (const key of ['actor', 'action', 'target_type', 'target', 'since', 'until', 'limit', 'cursor'] as const) {
          const value = options[key];
          if (value !== undefined) query.set(key, String(value));
        }
        const search = query.toString();
        const url = `${api}/admin/audit-events${search ? `?${search}` : ''}`;
        const answer = await request<{ events?: unknown; next_cursor?: unknown }>('GET', url);
        return { events: unwrap(answer, 'events', `GET ${url}`), next_cursor: typeof answer.next_cursor === 'string' ? answer.next_cursor : null };
      },
    },
  };
}
