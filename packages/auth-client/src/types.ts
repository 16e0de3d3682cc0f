/** Whether a credential may obtain tokens. Revocation is separate (`revoked_at`). */
export type M2MClientStatus = 'active' | 'disabled';

/**
 * A service (machine-to-machine) credential as the server shows it: never the
 * secret or its hash. Timestamps are ISO 8601 strings.
 */
export interface M2MClientRecord {
  /** The record's UUID: the `id` every other `services` method takes. */
  id: string;
  /** The operator-chosen OAuth `client_id`, e.g. `billing-svc`. */
  client_id: string;
  name: string;
  description: string | null;
  /** Scopes the credential may assert, e.g. `['gsku:publish']`. */
  scopes: string[];
  allowed_audiences: string[];
  status: M2MClientStatus;
  created_at: string;
  updated_at: string;
  last_used_at: string | null;
  /** Set once the credential is revoked; revoked records leave `services.list()`. */
  revoked_at: string | null;
  created_by: string | null;
  /**
   * Scopes in `scopes` that no permission catalog defines any more (pruned
   * from their catalog, or in a namespace that got a catalog later). They are
   * never granted; a `services.update()` that sets scopes must drop them.
   */
  orphaned_scopes: string[];
}

/** Body of `services.create()` (`POST /admin/m2m-clients`). */
export interface CreateM2MClientRequest {
  /** 3–100 chars of `[a-z0-9._-]`, starting with a letter or digit; unique. */
  client_id: string;
  name: string;
  description?: string | null;
  /** `service:permission` strings, e.g. `gsku:publish`. */
  scopes?: string[];
  allowed_audiences?: string[];
}

/** Answer of `services.create()`: the record and its secret, shown exactly once. */
export interface CreateM2MClientResponse {
  client: M2MClientRecord;
  /** Shown exactly once: store it in a secret manager now. The server keeps only a bcrypt hash. */
  client_secret: string;
}

/** A credential's secret as the API shows it (`services.secrets()`): never the secret or its hash. */
export interface M2MClientSecretRecord {
  /** The secret's id: what `services.deleteSecret()` takes. */
  id: string;
  created_at: string;
  /** Last successful grant with this secret (one-minute resolution); null: never used. */
  last_used_at: string | null;
  /** When it stops authenticating; null: no expiry. In the past: expired. */
  expires_at: string | null;
  /** A short non-secret tag telling the secrets apart (first 4 characters of base64url(SHA-256(secret))); '' for a secret from before rotation until its first use. */
  hint: string;
  /** How the server stores it. */
  hash_alg: 'bcrypt' | 'hmac-sha256';
}

/** Options of `services.rotateSecret()`. */
export interface RotateSecretOptions {
  /** Seconds until the credential's other live secret expires (0: at once). Omitted: it stays live until deleted. */
  expire_previous_in?: number;
}

/** Answer of `services.rotateSecret()`. */
export interface RotateSecretResponse {
  secret: M2MClientSecretRecord;
  /** Shown exactly once: store it in a secret manager now. */
  client_secret: string;
}

/** Body of `services.update()` (`PATCH /admin/m2m-clients/:id`): at least one field. */
export interface UpdateM2MClientRequest {
  name?: string;
  description?: string | null;
  scopes?: string[];
  allowed_audiences?: string[];
  status?: M2MClientStatus;
}

/**
 * Filters of `services.list()` and `services.listPage()` (`GET /admin/m2m-clients`).
 * They combine; none → every credential that is not revoked.
 */
export interface M2MClientFilters {
  status?: M2MClientStatus;
  /** Only credentials holding this scope, e.g. `gsku:publish`. */
  scope?: string;
  /** Only credentials whose `client_id` starts with this. */
  client_id_prefix?: string;
  /** Revoked credentials too (default `false`). */
  include_revoked?: boolean;
}

/** Options of `services.listPage()`: the filters, a page size and the cursor of the previous page. */
export interface M2MClientPageOptions extends M2MClientFilters {
  /** Page size, 1–500. */
  limit: number;
  /** `next_cursor` of the previous page; omit for the first page. */
  cursor?: string;
}

/** One page of credentials, newest first. */
export interface M2MClientPage {
  clients: M2MClientRecord[];
  /** Pass as `cursor` for the next page; `null` on the last one. */
  next_cursor: string | null;
}

/** One permission of a catalog manifest (`permissions.register()`). */
export interface PermissionInput {
  /** The scope it defines, `namespace:permission` in lower case, e.g. `gsku:publish`; owned by one catalog. */
  code: string;
  name: string;
  description?: string | null;
  resource?: string | null;
  action?: string | null;
  category?: string | null;
}

/** Body of `permissions.register()`: the whole catalog of one service (1 to 1000 permissions). */
export interface RegisterCatalogRequest {
  /** The catalog's name, e.g. `gsku`; `core` and `auth` are reserved. */
  service: string;
  permissions: PermissionInput[];
}

/** Answer of `permissions.register()`. */
export interface RegisterCatalogResponse {
  service: string;
  /** Permissions inserted or changed; 0 when the manifest matched the catalog. */
  upserted_count: number;
  /** Codes the catalog no longer declares, now removed (credentials holding them see them in `orphaned_scopes`). */
  pruned_codes: string[];
}

/** A registered permission as the server shows it. */
export interface PermissionRecord {
  code: string;
  service: string;
  name: string;
  description: string | null;
  resource: string | null;
  action: string | null;
  category: string | null;
  created_at: string;
  updated_at: string;
}

/** One registered catalog (`permissions.services()`). */
export interface CatalogSummary {
  service: string;
  /** How many permissions it defines. */
  count: number;
  /** When it last changed. */
  updated_at: string;
  /** Who made that change: an admin's email, `client:<client_id>` (the service itself), or `cli`. */
  registered_by: string;
}

/** Body of `auth.login()`. */
export interface LoginRequest {
  email: string;
  password: string;
}

/** A signed-in user as the server shows it. */
export interface AuthUser {
  id: string;
  email: string;
  roles: string[];
  created_at: string;
}

/** Answer of `auth.login()` (`POST /auth/login`). */
export interface LoginResponse {
  user: AuthUser;
  tokens: { access_token: string; token_type: 'Bearer'; expires_in: number };
  roles: string[];
}

/** Body of `auth.changePassword()` (`POST /auth/password`). */
export interface ChangePasswordRequest {
  current_password: string;
  /** At least 12 characters, at most 72 bytes, different from the current one. */
  new_password: string;
}

/** Answer of `auth.revokeAllSessions()` (`POST /auth/sessions/revoke-all`). */
export interface RevokeAllSessionsResponse {
  /** How many sessions were ended, the caller's own included. */
  revoked_count: number;
}

/** Answer of `auth.me()` (`GET /auth/me`). */
export interface MeResponse {
  user: AuthUser;
  roles: string[];
}

/** The RFC 8414 authorization server metadata `ready()` reads (the fields it relies on). */
export interface ServerMetadata {
  issuer: string;
  token_endpoint: string;
  grant_types_supported: string[];
  [field: string]: unknown;
}

/** What the client reads of an answer: a subset of the Fetch API `Response`. */
export interface FetchResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  /** The body as a stream (the platform's `fetch` has one): read up to 64 KiB, then cancelled. */
  readonly body?: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> } } | null;
  text(): Promise<string>;
}

/**
 * The `fetch` the client calls: the platform's `fetch` fits, and so does any
 * wrapper or test double. Declared structurally, so the published types need
 * neither the DOM lib nor `@types/node`.
 */
export type FetchLike = (input: string, init: { method: string; headers: Record<string, string>; body?: string }) => Promise<FetchResponse>;

/** One entry of the audit trail (`audit.list()`, `GET /admin/audit-events`). */
export interface AuditEvent {
  /** Increasing with time. */
  id: string;
  /** When, ISO 8601. */
  at: string;
  /** Who: an admin's email (for a failed sign-in, the email as typed), `cli` or `server`. */
  actor: string;
  actor_id: string | null;
  /** What, e.g. `m2m_client.create`, `m2m_client.update`, `m2m_client.revoke`, `login.failure`. */
  action: string;
  target_type: string | null;
  /** A credential's or user's record id, a key's kid, a catalog's service name. */
  target_id: string | null;
  ip: string | null;
  /** What changed (never a secret). */
  details: Record<string, unknown> | null;
}

/** Filters and paging of `audit.list()`; every filter matches exactly, and they combine. */
export interface AuditListOptions {
  actor?: string;
  action?: string;
  target_type?: 'm2m_client' | 'user' | 'signing_key' | 'permission_catalog';
  /** A target id, e.g. a credential's record `id`: its trail. */
  target?: string;
  /** ISO 8601: from this time on. */
  since?: string;
  /** ISO 8601: before this time. */
  until?: string;
  /** Page size, 1–500 (server default 100). */
  limit?: number;
  /** `next_cursor` of the previous page. */
  cursor?: string;
}

/** One page of the audit trail, newest first. */
export interface AuditPage {
  events: AuditEvent[];
  /** Pass as `cursor` for the next (older) page; `null` on the last one. */
  next_cursor: string | null;
}

/** The same as {@link M2MClientSecretRecord} (the console's name for it). */
export type ClientSecretRecord = M2MClientSecretRecord;
