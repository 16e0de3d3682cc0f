import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import type { Clock } from '../src/index.js';
import { keyIdForSecret } from '../src/index.js';

export const SECRET = 'test-secret-current-0123456789abcdef-0123456789';
export const PREVIOUS_SECRET = 'test-secret-previous-0123456789abcdef-012345678';
export const OTHER_SECRET = 'test-secret-someone-else-0123456789abcdef-01234';
export const ISSUER = 'https://auth.test';
export const AUDIENCE = 'catalog-api';

/** A clock whose time moves only when a test says so. */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, { at: number; callback: () => void }>();

  constructor(start = Date.UTC(2030, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing due timers in order (each at its own time). */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      const next = this.#nextTimer();
      if (next === undefined || next[1].at > target) break;
      this.#timers.delete(next[0]);
      this.#now = next[1].at;
      next[1].callback();
    }
    this.#now = target;
  }

  /** Moves to the next timer and fires it. */
  advanceToNextTimer(): boolean {
    const next = this.#nextTimer();
    if (next === undefined) return false;
    this.advance(next[1].at - this.#now);
    return true;
  }

  #nextTimer(): [number, { at: number; callback: () => void }] | undefined {
    let best: [number, { at: number; callback: () => void }] | undefined;
    for (const entry of this.#timers) if (best === undefined || entry[1].at < best[1].at) best = entry;
    return best;
  }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 2));

/**
 * Settles `promise` while firing the fake clock's timers (backoff sleeps)
 * whenever the code under test is waiting on one. Real I/O runs in real time.
 */
export async function drive<T>(clock: FakeClock, promise: Promise<T>): Promise<T> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 5000 && !settled; i++) {
    await tick();
    if (!settled) clock.advanceToNextTimer();
  }
  return promise;
}

/** Resolves once `condition()` holds (polling in real time), or fails after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await tick();
  }
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export type Reply =
  | { status: number; headers?: Record<string, string>; body?: unknown }
  | 'hang';

export interface TestServer {
  url: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

/** A loopback HTTP server that records every request and answers with `handler`. */
export async function startServer(handler: (request: SeenRequest, n: number) => Reply | Promise<Reply>): Promise<TestServer> {
  const requests: SeenRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', async () => {
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
      requests.push(seen);
      const reply = await handler(seen, requests.length);
      if (reply === 'hang') return;
      const body = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? {});
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers }).end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A token endpoint answer: `tok-<n>` for the n-th request. */
export function tokenReply(n: number, expiresIn = 900): Reply {
  return { status: 200, body: { access_token: `tok-${n}`, token_type: 'Bearer', expires_in: expiresIn, scope: '' } };
}

/** A port on which nothing listens. */
export async function closedPortUrl(): Promise<string> {
  const server = await startServer(() => ({ status: 200 }));
  await server.close();
  return server.url;
}

/** Signs a token the way the auth server does; `claims` and `header` override the defaults. */
export async function signToken(
  options: {
    claims?: Record<string, unknown>;
    header?: Record<string, unknown>;
    secret?: string;
    now?: number;
    omit?: string[];
  } = {},
): Promise<string> {
  const secret = options.secret ?? SECRET;
  const iat = Math.floor((options.now ?? Date.now()) / 1000);
  const claims: Record<string, unknown> = {
    iss: ISSUER,
    sub: 'billing-svc',
    aud: AUDIENCE,
    iat,
    nbf: iat,
    exp: iat + 900,
    jti: 'jti-1',
    token_type: 'service',
    client_id: 'billing-svc',
    service_name: 'Billing backend',
    scopes: ['gsku:publish', 'gsku:read'],
    scope: 'gsku:publish gsku:read',
    ...options.claims,
  };
  for (const name of options.omit ?? []) delete claims[name];
  const header = { alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(secret), ...options.header };
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(new TextEncoder().encode(secret));
}
