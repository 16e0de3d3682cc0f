import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createServiceTokenVerifier, type PublicJwk, TokenVerificationError, type ServiceTokenVerifierOptions } from '../src/index.js';
import { corpus as generated, type Vector } from './vectors/generate.js';

/**
 * The shared corpus (test/vectors/service-tokens.json, written by generate.ts):
 * this verifier must reach the committed decision on every token. The PHP
 * verifier of rw3iss/auth-server-laravel runs the same corpus
 * (packages/auth-server-laravel/tests/SharedVectorsTest.php).
 */

interface Corpus {
  verifier: {
    secret: string | null;
    public_keys?: object[];
    previous_secrets: string[];
    issuer: string | string[];
    audience: string | string[];
    algorithms: ServiceTokenVerifierOptions['algorithms'];
    clock_tolerance_sec: number;
    max_lifetime_sec: number;
    now: number;
  };
  vectors: Vector[];
}

const corpus = JSON.parse(readFileSync(new URL('./vectors/service-tokens.json', import.meta.url), 'utf8')) as Corpus;

function verifierFor(vector: Vector) {
  const options = { ...corpus.verifier, ...vector.verifier };
  return createServiceTokenVerifier({
    // null: no secret (public keys only).
    ...(options.secret === null ? {} : { secret: options.secret }),
    ...(options.public_keys === undefined ? {} : { publicKeys: options.public_keys as PublicJwk[] }),
    previousSecrets: options.previous_secrets,
    issuer: options.issuer,
    audience: options.audience,
    algorithms: options.algorithms,
    clockToleranceSec: options.clock_tolerance_sec,
    maxTokenLifetimeSec: options.max_lifetime_sec,
    cache: false,
    clock: { now: () => options.now * 1000 },
  });
}

describe('shared service-token vectors', () => {
  it('the committed corpus is what generate.ts produces (regenerate it after changing either)', () => {
    // An ECDSA signature differs on each run: those vectors are compared without it.
    const unsigned = (c: Corpus) => ({
      ...c,
      vectors: c.vectors.map((v) => (v.randomized_signature ? { ...v, token: v.token.split('.').slice(0, 2).join('.') } : v)),
    });
    expect(unsigned(JSON.parse(JSON.stringify(generated)) as Corpus)).toEqual(unsigned(corpus));
  });

  it('the corpus covers acceptance, every refusal code and every reason', () => {
    const decisions = new Set(corpus.vectors.map((v) => (v.expect.ok ? 'ok' : `${v.expect.code}/${v.expect.reason ?? ''}`)));
    for (const decision of [
      'ok',
      'missing_token/',
      'token_expired/',
      'insufficient_scope/',
      ...['malformed', 'signature', 'unknown_key', 'algorithm', 'type', 'token_type', 'issuer', 'audience', 'claims', 'not_yet_valid', 'lifetime'].map(
        (reason) => `invalid_token/${reason}`,
      ),
    ]) {
      expect(decisions, decision).toContain(decision);
    }
  });

  for (const vector of corpus.vectors) {
    it(`${vector.name}: ${vector.description}`, async () => {
      const verifier = verifierFor(vector);
      const outcome = await verifier.verify(vector.token, { scopes: vector.required_scopes, mode: vector.mode }).then(
        (principal) => ({ ok: true as const, principal }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      if (vector.expect.ok) {
        expect(outcome.ok ? undefined : outcome.error).toBeUndefined();
        if (!outcome.ok) return;
        expect({ client_id: outcome.principal.clientId, service_name: outcome.principal.serviceName, scopes: [...outcome.principal.scopes] }).toEqual({
          client_id: vector.expect.client_id,
          service_name: vector.expect.service_name,
          scopes: vector.expect.scopes,
        });
      } else {
        expect(outcome.ok).toBe(false);
        if (outcome.ok) return;
        expect(outcome.error).toBeInstanceOf(TokenVerificationError);
        const error = outcome.error as TokenVerificationError;
        expect({ code: error.code, reason: error.reason }).toEqual({ code: vector.expect.code, reason: vector.expect.reason });
      }
    });
  }
});
