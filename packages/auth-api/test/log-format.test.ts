import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { serverLoggerOptions } from '../src/app.js';
import { chooseLogFormat, prettyLogStream } from '../src/lib/log-format.js';

describe('log format', () => {
  it('is pretty only in development with a terminal on stdout; JSON otherwise', () => {
    expect(chooseLogFormat('development', true)).toBe('pretty');
    expect(chooseLogFormat('development', false)).toBe('json'); // piped, redirected to a file, docker logs
    expect(chooseLogFormat('development', undefined)).toBe('json'); // stdout is not a stream with isTTY
    expect(chooseLogFormat('production', true)).toBe('json');
    expect(chooseLogFormat('test', true)).toBe('json');
  });

  it('the pretty stream prints readable lines, after redaction', async () => {
    let out = '';
    const destination = new Writable({
      write(chunk, _encoding, done) {
        out += chunk;
        done();
      },
    });
    const app = Fastify({ logger: { ...serverLoggerOptions('info'), stream: await prettyLogStream(destination) } });
    app.log.info({ body: { client_secret: 'm2msk_never_printed', scope: 'gsku:read' } }, 'grant failed');
    await app.close();
    expect(out).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: grant failed\n/);
    expect(out).toContain('"scope": "gsku:read"');
    expect(out).toContain('"client_secret": "[redacted]"');
    expect(out).not.toContain('m2msk_never_printed');
    expect(out).not.toMatch(/^\{/m); // not JSON lines
  });
});
