import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type Browser, chromium, type Page } from 'playwright-core';
import { launchServer } from '../../test/process-helpers.js';

/** Flags for Debian's Chromium in a container: no sandbox (root), no GPU, none of its own network traffic (a closed network refuses it). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** The system's Chromium: CHROMIUM_PATH, else `command -v chromium`. Fails with the install command when missing. */
export function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim().split('\n')[0]!;
  } catch {
    throw new Error('No Chromium on the PATH: install it with `apt-get update && apt-get install -y chromium` (or set CHROMIUM_PATH)');
  }
}

/** Headless Chromium with a fresh profile (playwright-core makes a temporary one and deletes it on close). */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: CHROMIUM_ARGS });
}

export interface RunningServer {
  url: string;
  stop(): Promise<void>;
  log(): string;
}

/** Port range of this suite (5500-5599): CONSOLE_TEST_PORT or 5510. */
export const SERVER_PORT = Number(process.env.CONSOLE_TEST_PORT || 5510);

/** The built server (`dist/cli.js serve`) on the embedded database in a fresh folder, as an operator runs it. */
export async function startServer(env: Record<string, string>): Promise<RunningServer> {
  const url = `http://127.0.0.1:${SERVER_PORT}`;
  const server = await launchServer({ port: SERVER_PORT, env: { JWT_ISSUER: url, ...env }, stdout: 'capture', stderr: 'capture' });
  return {
    url,
    stop: async () => {
      await server.stop();
    },
    log: server.output,
  };
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/**
 * axe-core on the page as it is: WCAG 2.1 A/AA and best practices. Evaluated through the
 * DevTools protocol, which the page's CSP does not govern (a script tag would be refused).
 * Returns the serious and critical violations.
 */
export async function seriousA11yViolations(page: Page): Promise<AxeViolation[]> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: Document, options: object): Promise<{ violations: AxeViolation[] }> } }).axe;
    return axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
  });
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) }));
}
