import type { KeyObject } from 'node:crypto';
import { ACCESS_TOKEN_TYP } from '@rw3iss/auth-server-ts';
import type { JWK } from 'jose';
import type { Kysely, Transaction } from 'kysely';
import type { Database, SigningKeyRow, SigningKeyState } from '../../db/schema.js';
import { ApiError } from '../../errors.js';
import { type Clock, iso } from '../../lib/clock.js';
import { type AsymmetricAlgorithm, createJwsSigner, decryptPrivateKey, encryptPrivateKey, generateSigningKey } from '../../lib/key-crypto.js';
import { type Actor, insertAuditEntry } from '../audit/audit.repository.js';
import { insertSigningKey, listSigningKeys, updateSigningKey, withKeyStateLock } from './signing-keys.repository.js';

/** Clock skew allowed between this server and verifiers, in seconds (the SDK's default tolerance is 5 s). */
export const KEY_RETIRE_LEEWAY_SEC = 60;
/** How often every instance re-reads the keys (and moves them along their states), in seconds. */
export const KEY_REFRESH_INTERVAL_SEC = 30;

/** The server's actor for state changes it makes on its own (activation, retirement). */
const SERVER_ACTOR: Actor = { id: null, label: 'auth-api', ip: null };

export interface SigningKeysDeps {
  db: Kysely<Database>;
  clock: Clock;
  /** SERVICE_TOKEN_ALG: asymmetric instances sign, create and move keys along; HS256 ones only publish. */
  alg: 'HS256' | AsymmetricAlgorithm;
  /** Decrypts and encrypts private keys; required to sign or rotate. */
  keyEncryptionKey: Buffer | undefined;
  serviceTokenTtlSec: number;
  /** Seconds a new key is published before it signs. */
  publishDelaySec: number;
  refreshIntervalSec?: number;
}

/** A key as the admin route and the CLI show it: never the private key. */
export interface SigningKeyView {
  kid: string;
  alg: AsymmetricAlgorithm;
  state: SigningKeyState;
  created_at: string;
  activates_at: string;
  activated_at: string | null;
  retire_at: string | null;
  retired_at: string | null;
}

/** Signs with the current key: a pre-encoded header and a node:crypto signature. */
export interface ServiceTokenSigner {
  kid: string;
  alg: AsymmetricAlgorithm;
  /** `header.payload.signature` for a JSON payload. */
  sign(payload: string): Promise<string>;
}

/** A published public key: a JWK with its kid, alg and `use: "sig"`. */
export type PublicJwk = JWK & { kty: string; kid: string; alg: string; use: string };

const PUBLISHED: ReadonlySet<SigningKeyState> = new Set(['next', 'current', 'retiring']);

export function toSigningKeyView(row: SigningKeyRow): SigningKeyView {
  return {
    kid: row.kid,
    alg: row.alg,
    state: row.state,
    created_at: row.created_at.toISOString(),
    activates_at: row.activates_at.toISOString(),
    activated_at: iso(row.activated_at),
    retire_at: iso(row.retire_at),
    retired_at: iso(row.retired_at),
  };
}

/**
 * The asymmetric signing keys (docs/TRUST.md, "Key rotation").
 *
 * States: `next` (published, not signing) → `current` (signs) → `retiring`
 * (published until every token it signed has expired) → `retired` (private
 * key erased). Every instance re-reads the table every
 * {@link KEY_REFRESH_INTERVAL_SEC} and signs with the row marked `current`, so
 * all instances on one database sign with the same key (within one refresh).
 * State changes run under one advisory lock and the table allows one
 * `current` and one `next` row: concurrent rotations end with one of each.
 *
 * Timing: `rotate` creates a `next` key that may sign from
 * `publishDelay + refreshInterval` later (every instance publishes it within
 * one refresh, then every verifier cache of at most JWKS_MAX_AGE ≤
 * publishDelay has seen it). The instance that first refreshes after that
 * time makes it `current` and the old one `retiring` until
 * `refreshInterval + SERVICE_TOKEN_TTL + leeway` later (instances still
 * signing with it switch within one refresh; their tokens live one TTL).
 */
export function createSigningKeyService(deps: SigningKeysDeps) {
  const { db, clock, keyEncryptionKey, serviceTokenTtlSec, publishDelaySec } = deps;
  const refreshIntervalSec = deps.refreshIntervalSec ?? KEY_REFRESH_INTERVAL_SEC;
  const asymmetric = deps.alg !== 'HS256';
  const privateKeys = new Map<string, KeyObject>();
  let published: PublicJwk[] = [];
  let signer: ServiceTokenSigner | undefined;
  let timer: NodeJS.Timeout | undefined;

  const now = () => new Date(clock());

  function requireKek(): Buffer {
    if (!keyEncryptionKey) {
      throw new ApiError('conflict', 'KEY_ENCRYPTION_KEY is not configured: set SERVICE_TOKEN_ALG to ES256 or EdDSA (with KEY_ENCRYPTION_KEY in production) to create signing keys');
    }
    return keyEncryptionKey;
  }

  function newKeyAlg(): AsymmetricAlgorithm {
    if (deps.alg === 'HS256') {
      throw new ApiError('conflict', 'SERVICE_TOKEN_ALG is HS256: set it to ES256 or EdDSA to create signing keys');
    }
    return deps.alg;
  }

  async function createKey(trx: Transaction<Database>, state: 'next' | 'current', at: Date): Promise<SigningKeyRow> {
    const kek = requireKek();
    const key = await generateSigningKey(newKeyAlg());
    const activatesAt = state === 'current' ? at : new Date(at.getTime() + (publishDelaySec + refreshIntervalSec) * 1000);
    await insertSigningKey(trx, {
      kid: key.kid,
      alg: key.alg,
      state,
      public_jwk: key.publicJwk as Record<string, unknown>,
      private_key_enc: encryptPrivateKey(kek, key.kid, key.privateDer),
      created_at: at,
      activates_at: activatesAt,
      activated_at: state === 'current' ? at : null,
    });
    key.privateDer.fill(0);
    const rows = await listSigningKeys(trx);
    return rows.find((r) => r.kid === key.kid)!;
  }

  /** Whether `rows` call for a state change now (checked without the lock; rechecked under it). */
  function dueChange(rows: SigningKeyRow[], at: Date): boolean {
    const current = rows.find((r) => r.state === 'current');
    const next = rows.find((r) => r.state === 'next');
    if (!current && !next) return true;
    if (next && next.activates_at <= at) return true;
    return rows.some((r) => r.state === 'retiring' && r.retire_at !== null && r.retire_at <= at);
  }

  /** Moves keys along their states (asymmetric instances only), under the lock. */
  async function advance(): Promise<void> {
    const at = now();
    if (!dueChange(await listSigningKeys(db), at)) return;
    const events: { action: 'signing_key.activate' | 'signing_key.retire'; kid: string; details: Record<string, unknown> }[] = [];
    await withKeyStateLock(db, async (trx) => {
      const rows = await listSigningKeys(trx);
      for (const row of rows) {
        if (row.state === 'retiring' && row.retire_at !== null && row.retire_at <= at) {
          // Its tokens have all expired: the public key leaves the JWKS and the private key is erased.
          await updateSigningKey(trx, row.kid, { state: 'retired', retired_at: at, private_key_enc: null });
          events.push({ action: 'signing_key.retire', kid: row.kid, details: {} });
        }
      }
      const current = rows.find((r) => r.state === 'current');
      const next = rows.find((r) => r.state === 'next');
      if (current && next && next.activates_at <= at) {
        const retireAt = new Date(at.getTime() + (refreshIntervalSec + serviceTokenTtlSec + KEY_RETIRE_LEEWAY_SEC) * 1000);
        await updateSigningKey(trx, current.kid, { state: 'retiring', retire_at: retireAt });
        await updateSigningKey(trx, next.kid, { state: 'current', activated_at: at });
        events.push({ action: 'signing_key.activate', kid: next.kid, details: { replaces: current.kid, previous_retire_at: retireAt.toISOString() } });
      } else if (!current && next && next.activates_at <= at) {
        // The first key after a switch from HS256, prepared with `keys rotate`: published long enough.
        await updateSigningKey(trx, next.kid, { state: 'current', activated_at: at });
        events.push({ action: 'signing_key.activate', kid: next.kid, details: { first: true } });
      } else if (!current && !next) {
        // A database that never had a key: no verifier can hold an older key set, so the first
        // key signs at once (verifiers fetch the JWKS on its unknown kid).
        const row = await createKey(trx, 'current', at);
        events.push({ action: 'signing_key.activate', kid: row.kid, details: { first: true } });
      }
      // Otherwise (no current key, a prepared one not yet due): service tokens stay HS256 until it is.
      for (const event of events) await insertAuditEntry(trx, SERVER_ACTOR, { action: event.action, targetType: 'signing_key', targetId: event.kid, details: event.details });
    });
  }

  function signerFor(row: SigningKeyRow): ServiceTokenSigner {
    let key = privateKeys.get(row.kid);
    if (!key) {
      if (row.private_key_enc === null) throw new Error(`signing key ${row.kid} has no private key`);
      key = decryptPrivateKey(requireKek(), row.kid, row.private_key_enc);
      privateKeys.set(row.kid, key);
    }
    const signature = createJwsSigner(row.alg, key);
    const header = Buffer.from(JSON.stringify({ alg: row.alg, typ: ACCESS_TOKEN_TYP, kid: row.kid })).toString('base64url');
    return {
      kid: row.kid,
      alg: row.alg,
      async sign(payload) {
        const input = `${header}.${Buffer.from(payload).toString('base64url')}`;
        return `${input}.${await signature(input)}`;
      },
    };
  }

  /** Re-reads the keys (after moving them along, on an asymmetric instance) and swaps the published set and the signer. */
  async function refresh(): Promise<void> {
    if (asymmetric) await advance();
    const rows = await listSigningKeys(db);
    published = rows.filter((r) => PUBLISHED.has(r.state)).map((r) => r.public_jwk as PublicJwk);
    if (asymmetric) {
      const current = rows.find((r) => r.state === 'current');
      if (current && signer?.kid !== current.kid) signer = signerFor(current);
      for (const kid of privateKeys.keys()) if (kid !== current?.kid) privateKeys.delete(kid);
    }
  }

  return {
    refresh,
    /** The public keys verifiers should hold: next, current and retiring (RFC 7517 key set). */
    jwks(): { keys: PublicJwk[] } {
      return { keys: published };
    },
    /**
     * The current signer; undefined in HS256 mode, and after a switch to ES256 / EdDSA while the
     * prepared key is not yet due (tokens are then signed with JWT_ACCESS_SECRET, as before the switch).
     */
    signer(): ServiceTokenSigner | undefined {
      return signer;
    },
    /**
     * Schedules a rotation: a `next` key, published now, signing from its
     * `activates_at`. Idempotent while one is scheduled: returns that key
     * with `created: false`. Audited.
     */
    async rotate(actor: Actor): Promise<{ created: boolean; key: SigningKeyView }> {
      newKeyAlg();
      requireKek();
      const at = now();
      const result = await withKeyStateLock(db, async (trx) => {
        const existing = (await listSigningKeys(trx)).find((r) => r.state === 'next');
        if (existing) return { created: false, row: existing };
        const row = await createKey(trx, 'next', at);
        await insertAuditEntry(trx, actor, {
          action: 'signing_key.rotate',
          targetType: 'signing_key',
          targetId: row.kid,
          details: { alg: row.alg, activates_at: row.activates_at.toISOString() },
        });
        return { created: true, row };
      });
      return { created: result.created, key: toSigningKeyView(result.row) };
    },
    /** Every key, oldest first (retired ones too). */
    async list(): Promise<SigningKeyView[]> {
      return (await listSigningKeys(db)).map(toSigningKeyView);
    },
    /** Refreshes every `refreshIntervalSec` until `stop()`; a failed refresh keeps the last keys and is reported. */
    start(onError: (err: unknown) => void): void {
      timer ??= setInterval(() => void refresh().catch(onError), refreshIntervalSec * 1000).unref();
    },
    stop(): void {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}

export type SigningKeyService = ReturnType<typeof createSigningKeyService>;
