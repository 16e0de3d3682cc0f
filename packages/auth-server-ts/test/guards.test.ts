import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireServiceToken as expressGuard } from '../src/express.js';
import { requireServiceToken, serviceTokenPlugin } from '../src/fastify.js';
import { createServiceTokenVerifier } from '../src/index.js';
import { AUDIENCE, ISSUER, OTHER_SECRET, SECRET, signToken } from './helpers.js';

interface Answer {
  status: number;
  challenge: string | null;
  body: unknown;
}

/** The same checks against both frameworks: `call(path, authorization?)` makes one request. */
function guardContract(name: string, setup: () => Promise<(path: string, authorization?: string) => Promise<Answer>>) {
  describe(name, () => {
    let call: (path: string, authorization?: string) => Promise<Answer>;
    beforeAll(async () => {
      call = await setup();
    });

    it('accepts a valid token with the right scope and exposes the principal', async () => {
      const answer = await call('/publish', `Bearer ${await signToken()}`);
      expect(answer).toEqual({ status: 200, challenge: null, body: { clientId: 'billing-svc', scopes: ['gsku:publish', 'gsku:read'] } });
    });

    it('answers 403 insufficient_scope without the scope', async () => {
      const answer = await call('/publish', `Bearer ${await signToken({ claims: { scopes: ['gsku:read'], scope: 'gsku:read' } })}`);
      expect(answer.status).toBe(403);
      expect(answer.challenge).toBe(
        'Bearer error="insufficient_scope", error_description="The access token lacks the required scope", scope="gsku:publish"',
      );
      expect(answer.body).toEqual({
        error: 'insufficient_scope',
        error_description: 'The access token lacks the required scope',
        scope: 'gsku:publish',
      });
    });

    it('accepts any one of the scopes in mode any', async () => {
      const answer = await call('/any', `Bearer ${await signToken({ claims: { scopes: ['gsku:read'], scope: 'gsku:read' } })}`);
      expect(answer.status).toBe(200);
    });

    it('answers 401 with a bare Bearer challenge without a token', async () => {
      for (const authorization of [undefined, 'Basic dXNlcjpwYXNz', 'Bearer ', 'Bearer']) {
        const answer = await call('/publish', authorization);
        expect(answer).toEqual({
          status: 401,
          challenge: 'Bearer',
          body: { error: 'missing_token', error_description: 'A bearer token is required' },
        });
      }
    });

    it('answers 401 invalid_token for an invalid token', async () => {
      for (const token of ['garbage', 'two parts', await signToken({ secret: OTHER_SECRET }), await signToken({ claims: { token_type: 'user' } })]) {
        const answer = await call('/publish', `Bearer ${token}`);
        expect(answer).toEqual({
          status: 401,
          challenge: 'Bearer error="invalid_token", error_description="The access token is invalid"',
          body: { error: 'invalid_token', error_description: 'The access token is invalid' },
        });
      }
    });

    it('answers 401 invalid_token (body: token_expired) for an expired token', async () => {
      const iat = Math.floor(Date.now() / 1000) - 2000;
      const answer = await call('/publish', `bearer ${await signToken({ claims: { iat, nbf: iat, exp: iat + 900 } })}`);
      expect(answer.status).toBe(401);
      expect(answer.challenge).toBe('Bearer error="invalid_token", error_description="The access token expired"');
      expect(answer.body).toEqual({ error: 'token_expired', error_description: 'The access token expired' });
    });
  });
}

const verifier = createServiceTokenVerifier({ secret: SECRET, issuer: ISSUER, audience: AUDIENCE });

let fastify: FastifyInstance;
const fastifyApps: FastifyInstance[] = [];
afterAll(async () => {
  for (const app of fastifyApps) await app.close();
});

/** The guard in either hook it is documented for: `onRequest` (before the body is read) or `preHandler`. */
function fastifyGuardContract(hook: 'onRequest' | 'preHandler') {
  guardContract(`Fastify guard as ${hook} (inject)`, async () => {
    const app = Fastify();
    fastifyApps.push(app);
    if (hook === 'preHandler') fastify = app;
    await app.register(serviceTokenPlugin, { verifier });
    app.post('/publish', { [hook]: requireServiceToken('gsku:publish') }, async (request) => ({
      clientId: request.servicePrincipal!.clientId,
      scopes: request.servicePrincipal!.scopes,
    }));
    app.get('/any', { [hook]: requireServiceToken({ scopes: ['gsku:admin', 'gsku:read'], mode: 'any' }) }, async () => ({}));
    app.get('/open', async (request) => ({ principal: request.servicePrincipal }));
    await app.ready();
    return async (path, authorization) => {
      const res = await app.inject({
        method: path === '/publish' ? 'POST' : 'GET',
        url: path,
        headers: authorization === undefined ? {} : { authorization },
      });
      return { status: res.statusCode, challenge: (res.headers['www-authenticate'] as string | undefined) ?? null, body: res.json() };
    };
  });
}
fastifyGuardContract('preHandler');
fastifyGuardContract('onRequest');

describe('Fastify guard as onRequest', () => {
  it('refuses a request without a valid token before its body is read', async () => {
    const app = Fastify();
    fastifyApps.push(app);
    let parsed = 0;
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
      parsed += 1;
      try {
        done(null, JSON.parse(body as string));
      } catch (err) {
        (err as { statusCode?: number }).statusCode = 400;
        done(err as Error, undefined);
      }
    });
    await app.register(serviceTokenPlugin, { verifier });
    app.post('/publish', { onRequest: requireServiceToken('gsku:publish') }, async (request) => ({ body: request.body }));
    const post = (payload: string, authorization?: string) =>
      app.inject({ method: 'POST', url: '/publish', payload, headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) } });

    for (const authorization of [undefined, 'Bearer garbage', `Bearer ${await signToken({ secret: OTHER_SECRET })}`]) {
      // Malformed JSON too: the answer is the guard's 401, not the parser's 400.
      for (const payload of ['{"sku":"a"}', '{not json']) {
        const res = await post(payload, authorization);
        expect(res.statusCode).toBe(401);
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      }
    }
    const forbidden = await post('{"sku":"a"}', `Bearer ${await signToken({ claims: { scopes: ['gsku:read'], scope: 'gsku:read' } })}`);
    expect(forbidden.statusCode).toBe(403);
    expect(parsed).toBe(0);

    const ok = await post('{"sku":"a"}', `Bearer ${await signToken()}`);
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ body: { sku: 'a' } });
    expect(parsed).toBe(1);
  });
});

let closeExpress: () => void;
afterAll(() => closeExpress?.());

guardContract('Express guard (real socket)', async () => {
  const app = express();
  app.post('/publish', expressGuard(verifier, 'gsku:publish'), (req, res) => {
    res.json({ clientId: req.servicePrincipal!.clientId, scopes: req.servicePrincipal!.scopes });
  });
  app.get('/any', expressGuard(verifier, { scopes: ['gsku:admin', 'gsku:read'], mode: 'any' }), (_req, res) => {
    res.json({});
  });
  const server = await new Promise<import('node:http').Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  closeExpress = () => server.close();
  const { port } = server.address() as AddressInfo;
  return async (path, authorization) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method: path === '/publish' ? 'POST' : 'GET',
      headers: authorization === undefined ? {} : { authorization },
    });
    return { status: res.status, challenge: res.headers.get('www-authenticate'), body: await res.json() };
  };
});

describe('Fastify plugin', () => {
  it('leaves servicePrincipal null on routes without the guard', async () => {
    const res = await fastify.inject({ url: '/open', headers: { authorization: `Bearer ${await signToken()}` } });
    expect(res.json()).toEqual({ principal: null });
  });

  it('builds its own verifier from options', async () => {
    const app = Fastify();
    await app.register(serviceTokenPlugin, { secret: SECRET, issuer: ISSUER, audience: AUDIENCE });
    app.get('/', { preHandler: requireServiceToken('gsku:read') }, async (request) => ({ id: request.servicePrincipal?.clientId }));
    const res = await app.inject({ url: '/', headers: { authorization: `Bearer ${await signToken()}` } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ id: 'billing-svc' });
    await app.close();
  });

  it('fails the request (500) when the plugin is not registered', async () => {
    const app = Fastify();
    app.get('/', { preHandler: requireServiceToken('gsku:read') }, async () => ({}));
    const res = await app.inject({ url: '/', headers: { authorization: `Bearer ${await signToken()}` } });
    expect(res.statusCode).toBe(500);
    await app.close();
  });

  it('refuses malformed scopes when the route is defined', () => {
    expect(() => requireServiceToken('bad scope')).toThrowError(expect.objectContaining({ code: 'invalid_options' }));
    expect(() => expressGuard(verifier, 'bad"scope')).toThrowError(expect.objectContaining({ code: 'invalid_options' }));
  });

  it('refuses, when the route is defined, a scope the auth server can never issue', () => {
    // The server's rule: lower-case "service:permission" (its credentials cannot hold anything else).
    for (const scope of ['GSKU:Read', 'gsku', 'gsku:', ':read', 'gsku read', `gsku:${'a'.repeat(200)}`]) {
      expect(() => requireServiceToken(scope), scope).toThrowError(expect.objectContaining({ code: 'invalid_options' }));
      expect(() => requireServiceToken({ scopes: [scope] }), scope).toThrowError(expect.objectContaining({ code: 'invalid_options' }));
      expect(() => expressGuard(verifier, scope), scope).toThrowError(expect.objectContaining({ code: 'invalid_options' }));
    }
    expect(() => requireServiceToken('GSKU:Read')).toThrowError(/GSKU:Read.*never issues/);
    for (const scope of ['gsku:read', 'gsku:items:write', 'gsku-v2.beta:publish', 'gsku:*']) {
      expect(() => requireServiceToken(scope), scope).not.toThrow();
    }
  });
});

describe('refusal reasons', () => {
  const expired = async () => {
    const iat = Math.floor(Date.now() / 1000) - 2000;
    return signToken({ claims: { iat, nbf: iat, exp: iat + 900 } });
  };

  it('Fastify: onRefused sees code and reason; the response does not', async () => {
    const seen: Array<{ code: string; reason: string | undefined; url: string }> = [];
    const app = Fastify();
    await app.register(serviceTokenPlugin, { verifier, onRefused: (err, request) => seen.push({ code: err.code, reason: err.reason, url: request.url }) });
    app.get('/x', { preHandler: requireServiceToken('gsku:publish') }, async () => ({}));
    const bad = await app.inject({ url: '/x', headers: { authorization: `Bearer ${await signToken({ claims: { iss: 'https://other.test' } })}` } });
    const old = await app.inject({ url: '/x', headers: { authorization: `Bearer ${await expired()}` } });
    const ok = await app.inject({ url: '/x', headers: { authorization: `Bearer ${await signToken()}` } });
    expect([bad.statusCode, old.statusCode, ok.statusCode]).toEqual([401, 401, 200]);
    expect(seen).toEqual([
      { code: 'invalid_token', reason: 'issuer', url: '/x' },
      { code: 'token_expired', reason: undefined, url: '/x' },
    ]);
    expect(bad.body).not.toMatch(/issuer/);
    expect(bad.json()).toEqual({ error: 'invalid_token', error_description: 'The access token is invalid' });
    await app.close();
  });

  it('Fastify: by default, one info line on the request log with code and reason, never the token', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const stream = { write: (line: string) => lines.push(JSON.parse(line)) };
    const app = Fastify({ logger: { level: 'info', stream } });
    await app.register(serviceTokenPlugin, { verifier });
    app.get('/x', { preHandler: requireServiceToken('gsku:admin') }, async () => ({}));
    const token = await signToken({ claims: { aud: 'someone-else' } });
    await app.inject({ url: '/x', headers: { authorization: `Bearer ${token}` } });
    await app.inject({ url: '/x', headers: { authorization: `Bearer ${await signToken()}` } });
    const refused = lines.filter((line) => line.msg === 'service token refused');
    expect(refused).toEqual([
      expect.objectContaining({ level: 30, code: 'invalid_token', reason: 'audience', reqId: expect.anything() }),
      expect.objectContaining({ level: 30, code: 'insufficient_scope', requiredScopes: ['gsku:admin'] }),
    ]);
    expect(JSON.stringify(lines)).not.toContain(token.split('.')[2]);
    await app.close();
  });

  it('Fastify: a throwing onRefused does not change the answer', async () => {
    const app = Fastify();
    await app.register(serviceTokenPlugin, {
      verifier,
      onRefused: () => {
        throw new Error('listener bug');
      },
    });
    app.get('/x', { preHandler: requireServiceToken('gsku:publish') }, async () => ({}));
    const res = await app.inject({ url: '/x' });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ error: 'missing_token', error_description: 'A bearer token is required' });
    await app.close();
  });

  it('Express: { verifier, onRefused } sees code, reason and the request; the response does not', async () => {
    const seen: Array<{ code: string; reason: string | undefined; url: string | undefined }> = [];
    const app = express();
    const guarded = { verifier, onRefused: (err: { code: string; reason?: string }, req: { url?: string }) => seen.push({ code: err.code, reason: err.reason, url: req.url }) };
    app.get('/x', expressGuard(guarded, 'gsku:publish'), (_req, res) => {
      res.json({ ok: true });
    });
    const server = await new Promise<import('node:http').Server>((resolve) => {
      const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
    });
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/x`, { headers: { authorization: `Bearer ${await signToken({ secret: OTHER_SECRET })}` } });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: 'invalid_token', error_description: 'The access token is invalid' });
      const ok = await fetch(`http://127.0.0.1:${port}/x`, { headers: { authorization: `Bearer ${await signToken()}` } });
      expect(ok.status).toBe(200);
      expect(seen).toEqual([{ code: 'invalid_token', reason: expect.stringMatching(/^(signature|unknown_key)$/), url: '/x' }]);
    } finally {
      server.close();
    }
    expect(() => expressGuard({ verifier, onRefused: 'log' as never }, 'gsku:read')).toThrowError(expect.objectContaining({ code: 'invalid_options' }));
  });
});
