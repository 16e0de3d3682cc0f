import 'reflect-metadata';
import { createHmac, randomUUID } from 'node:crypto';
import type { INestApplication, LoggerService, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { keyIdForSecret } from '@rw3iss/auth-server-ts';

export type Platform = 'express' | 'fastify';
export const PLATFORMS: readonly Platform[] = ['express', 'fastify'];

/** A real Nest application on a real socket (127.0.0.1, a free port). */
export async function startNest(platform: Platform, module: Type, logger: LoggerService | false = false): Promise<{ app: INestApplication; url: string }> {
  const adapter = platform === 'express' ? new ExpressAdapter() : new FastifyAdapter();
  // abortOnError: false, or a failed boot would end the test process instead of rejecting.
  const app = await NestFactory.create(module, adapter, { logger, abortOnError: false });
  await app.listen(0, '127.0.0.1');
  return { app, url: (await app.getUrl()).replace('[::1]', '127.0.0.1') };
}

/** An HS256 access token with any claims and header, signed with `secret`, shaped as auth-api's. */
export function signToken(secret: string, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(secret), ...header })).toString('base64url');
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${head}.${body}.${createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`;
}

/** Standard claims (iss, aud, iat, nbf, exp, jti) issued at `nowSec`. */
export function baseClaims(issuer: string, audience: string, nowSec: number, ttlSec: number) {
  return { iss: issuer, aud: audience, iat: nowSec, nbf: nowSec, exp: nowSec + ttlSec, jti: randomUUID() };
}

/** A LoggerService that keeps what it is given. */
export function memoryLogger() {
  const lines: Array<{ level: string; message: string }> = [];
  const keep = (level: string) => (message: unknown) => {
    lines.push({ level, message: String(message) });
  };
  return { lines, log: keep('log'), warn: keep('warn'), error: keep('error'), debug: keep('debug'), verbose: keep('verbose'), fatal: keep('fatal') };
}
