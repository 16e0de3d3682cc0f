import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

type CreatedAt = ColumnType<Date, Date | undefined, never>;
type Timestamp = ColumnType<Date, Date, Date>;
type OptionalTimestamp = ColumnType<Date | null, Date | null | undefined, Date | null>;

export interface UsersTable {
  id: string;
  email: string;
  password_hash: string;
  roles: string[];
  created_at: CreatedAt;
  updated_at: Timestamp;
  /** Set while the user is disabled: no sign-in, no session. */
  disabled_at: OptionalTimestamp;
  /**
   * Bumped (with the row locked) whenever the user's sessions are ended: a
   * sign-in that read an older value, or whose password check raced a change,
   * creates no session.
   */
  session_epoch: ColumnType<number, number | undefined, number>;
}

/**
 * A signed-in admin. The bearer token itself is never stored: `token_hash` is
 * its SHA-256 (base64url), found by equality on each admin request.
 */
export interface AdminSessionsTable {
  id: string;
  token_hash: string;
  user_id: string;
  created_at: Timestamp;
  /** Absolute end: created_at + USER_TOKEN_TTL. */
  expires_at: Timestamp;
  /** Last request with this session, at one-minute resolution. */
  last_seen_at: OptionalTimestamp;
  /** Set by logout, revoke-all, a password change or reset, disabling the user. */
  revoked_at: OptionalTimestamp;
  ip: string | null;
  user_agent: string | null;
}

export type M2MClientStatus = 'active' | 'disabled';

export interface M2MClientsTable {
  id: string;
  client_id: string;
  name: string;
  description: string | null;
  scopes: string[];
  allowed_audiences: string[];
  status: M2MClientStatus;
  created_at: CreatedAt;
  updated_at: Timestamp;
  last_used_at: Timestamp | null;
  revoked_at: Timestamp | null;
  created_by: string | null;
}

export type ClientSecretAlg = 'bcrypt' | 'hmac-sha256';

/**
 * A credential's secrets (rotation): at most two live (not expired) at once.
 * `secret_hash` is a bcrypt hash or an HMAC-SHA256 under CLIENT_SECRET_PEPPER
 * (`hash_alg`); `hint` a short non-secret tag of the secret that picks the one
 * to compare ('' for secrets from before rotation, until their first use).
 */
export interface M2MClientSecretsTable {
  id: string;
  /** m2m_clients.id (the record's UUID), not the operator-chosen client_id. */
  client_id: string;
  secret_hash: string;
  hash_alg: ClientSecretAlg;
  hint: string;
  created_at: CreatedAt;
  /** Null: no expiry. Past: it authenticates no more. */
  expires_at: OptionalTimestamp;
  /** Last successful grant with this secret, at one-minute resolution. */
  last_used_at: OptionalTimestamp;
}

export interface AuditLogTable {
  id: Generated<string>;
  at: CreatedAt;
  /** users.id of the actor, or null (failed login, CLI without a user). */
  actor_id: string | null;
  /** Who acted, readable: an email, or `cli`. */
  actor: string;
  action: string;
  target_type: string | null;
  target_id: string | null;
  ip: string | null;
  details: ColumnType<Record<string, unknown> | null, string | null, string | null>;
}

export type SigningKeyState = 'next' | 'current' | 'retiring' | 'retired';

export interface SigningKeysTable {
  /** RFC 7638 JWK thumbprint of the public key. */
  kid: string;
  alg: 'ES256' | 'EdDSA';
  state: SigningKeyState;
  public_jwk: ColumnType<Record<string, unknown>, string, string>;
  /** AES-256-GCM ciphertext of the PKCS#8 private key; null once retired. */
  private_key_enc: string | null;
  created_at: CreatedAt;
  activates_at: Timestamp;
  activated_at: Timestamp | null;
  retire_at: Timestamp | null;
  retired_at: Timestamp | null;
}

/** Token-endpoint outcomes, counted per minute, client_id (as sent), address and outcome. */
export interface AuthEventsTable {
  minute: ColumnType<Date, Date, never>;
  client_id: string;
  address: string;
  /** `granted`, an RFC 6749 error code, `throttled` or `shed`. */
  outcome: string;
  count: number;
}

/** One registered permission catalog: a service and when (and by whom) it last changed. */
export interface PermissionCatalogsTable {
  service: string;
  created_at: CreatedAt;
  /** When the catalog last changed (an idempotent registration changes nothing). */
  updated_at: Timestamp;
  /** Who made that change: an admin's email, `client:<client_id>`, or `cli`. */
  registered_by: string;
}

/** A permission a catalog defines. `code` is a scope, owned by exactly one catalog. */
export interface PermissionsTable {
  code: string;
  /** The part of `code` before the first ':' (a stored generated column). */
  namespace: ColumnType<string, never, never>;
  service: string;
  name: string;
  description: string | null;
  resource: string | null;
  action: string | null;
  category: string | null;
  created_at: CreatedAt;
  updated_at: Timestamp;
}

/**
 * One failed-authentication counter (a fixed window) of the PostgreSQL attempt store, shared by
 * every instance. Unlogged. `key` is namespaced by throttle (`grant:ip:…`); `store` is the throttle.
 */
export interface AuthAttemptsTable {
  key: string;
  store: string;
  /** The network the key belongs to (for fair room when crowded). */
  grp: string | null;
  count: number;
  window_ends: Date;
}

/**
 * The revocation feed. `client`: tokens of `client_id` issued before `revoked_at` (+ 1 s) are
 * refused (the credential was revoked or disabled then, even if enabled again since).
 * `token`: the token `jti` is refused until `expires_at` (RFC 7009 revocation).
 */
export interface RevocationsTable {
  /** The feed cursor: increasing in commit order (writers lock the table). */
  seq: ColumnType<string, never, never>;
  kind: 'client' | 'token';
  client_id: string;
  jti: string | null;
  expires_at: Date | null;
  /** kind 'client': when the credential was revoked or disabled (or, for a collapsed flood of token revocations, when that happened). */
  revoked_at: ColumnType<Date, Date | undefined, never>;
  /** kind 'client': null while revoked or disabled (every token refused); else tokens with a lower iat are refused. */
  not_before: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

/** Every table, as kysely sees it. */
export interface Database {
  users: UsersTable;
  admin_sessions: AdminSessionsTable;
  m2m_clients: M2MClientsTable;
  m2m_client_secrets: M2MClientSecretsTable;
  audit_log: AuditLogTable;
  signing_keys: SigningKeysTable;
  auth_events: AuthEventsTable;
  permission_catalogs: PermissionCatalogsTable;
  permissions: PermissionsTable;
  auth_attempts: AuthAttemptsTable;
  revocations: RevocationsTable;
}

export type UserRow = Selectable<UsersTable>;
export type AdminSessionRow = Selectable<AdminSessionsTable>;
export type NewAdminSessionRow = Insertable<AdminSessionsTable>;
export type M2MClientRow = Selectable<M2MClientsTable>;
export type NewM2MClientRow = Insertable<M2MClientsTable>;
export type M2MClientUpdate = Updateable<M2MClientsTable>;
export type M2MClientSecretRow = Selectable<M2MClientSecretsTable>;
export type NewM2MClientSecretRow = Insertable<M2MClientSecretsTable>;
export type NewAuditEntry = Insertable<AuditLogTable>;
export type SigningKeyRow = Selectable<SigningKeysTable>;
export type PermissionRow = Selectable<PermissionsTable>;
export type PermissionCatalogRow = Selectable<PermissionCatalogsTable>;
