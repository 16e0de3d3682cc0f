// A ServiceTokenManager in a short-lived script (a job, a cron task, a CLI): while getToken()
// waits, the process must stay alive, so the rejection reaches the caller and the script
// decides the exit code. Run as real node processes, ESM (top-level await) and CommonJS.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { closedPortUrl } from './helpers.js';

const sdk = fileURLToPath(new URL('../src/index.ts', import.meta.url));
// tsx's loader, from the workspace root, so the scripts run the SDK from source.
const tsx = new URL('../../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const work = mkdtempSync(join(tmpdir(), 'auth-server-ts-script-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs `node --import tsx <file>` (the SDK from source); resolves to its exit code and output. */
function runScript(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', tsx, file], { cwd: work, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number | null }).code ?? null) : 0;
      resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
    });
  });
}

// Three attempts with backoff between them (the sleeps run on unref'd timers).
const options = (endpoint: string) =>
  JSON.stringify({ tokenEndpoint: `${endpoint}/t`, clientId: 'job', clientSecret: 's', retry: { maxAttempts: 3, baseDelayMs: 400 } });

describe('ServiceTokenManager in a short-lived script', () => {
  it('ESM with top-level await: the rejection reaches the caller, the exit code is the script\'s', async () => {
    const endpoint = await closedPortUrl();
    const file = join(work, 'job.mjs');
    writeFileSync(
      file,
      `import { ServiceTokenManager } from ${JSON.stringify(sdk)};
const tokens = new ServiceTokenManager({ ...${options(endpoint)}, random: () => 0.99 });
try {
  await tokens.getToken();
  console.log('got a token');
} catch (err) {
  console.log('caught', err.code, err.attempts);
  process.exitCode = 7;
}
`,
    );
    expect(await runScript(file)).toMatchObject({ code: 7, stdout: 'caught network_error 3\n' });
  });

  it('CommonJS: the promise settles and its handler runs', async () => {
    const endpoint = await closedPortUrl();
    const file = join(work, 'job.cjs');
    writeFileSync(
      file,
      `const { ServiceTokenManager } = require(${JSON.stringify(sdk)});
const tokens = new ServiceTokenManager({ ...${options(endpoint)}, random: () => 0.99 });
tokens.getToken().then(
  () => console.log('got a token'),
  (err) => {
    console.log('caught', err.code, err.attempts);
    process.exitCode = 9;
  },
);
`,
    );
    expect(await runScript(file)).toMatchObject({ code: 9, stdout: 'caught network_error 3\n' });
  });

  it('a script that got its token and closes nothing still exits (the cache holds no ref)', async () => {
    const { startServer, tokenReply } = await import('./helpers.js');
    const auth = await startServer((_, n) => tokenReply(n));
    try {
      const file = join(work, 'done.mjs');
      writeFileSync(
        file,
        `import { ServiceTokenManager } from ${JSON.stringify(sdk)};
const tokens = new ServiceTokenManager({ tokenEndpoint: ${JSON.stringify(`${auth.url}/t`)}, clientId: 'job', clientSecret: 's' });
console.log(await tokens.getToken());
`,
      );
      const started = Date.now();
      expect(await runScript(file)).toMatchObject({ code: 0, stdout: 'tok-1\n' });
      // The renewal timer (due in minutes) did not hold the process open.
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      await auth.close();
    }
  });
});
