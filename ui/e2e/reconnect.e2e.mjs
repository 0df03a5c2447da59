#!/usr/bin/env node
// Browser check that the dashboard survives an edge restart: serves ui/dist with
// e2e/mock-edge.mjs, waits for live data, kills the server, expects the "lost stream"
// state, restarts it, expects the page to be live again with new jobs. No C system needed.
//
//   npm run build && node e2e/reconnect.e2e.mjs [--port 8089] [--screenshot DIR]
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8089' },
    screenshot: { type: 'string' },
    timeout: { type: 'string', default: '20000' },
  },
});
const port = Number(values.port);
const timeout = Number(values.timeout) || 20000;
const url = `http://127.0.0.1:${port}/`;

function startEdge() {
  const child = spawn(process.execPath, [join(here, 'mock-edge.mjs'), '--port', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((ok, fail) => {
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`mock edge exited ${code}`)));
    child.stdout.once('data', () => ok(child));
  });
}

function stopEdge(child) {
  return new Promise((ok) => {
    child.removeAllListeners('exit');
    child.once('exit', ok);
    child.kill('SIGTERM');
  });
}

const status = (page) => page.locator('[data-testid="connection"]').getAttribute('data-status');
const newestJob = (page) => page.locator('[data-testid^="job-"]').first().getAttribute('data-testid');

async function main() {
  const profile = mkdtempSync(join(tmpdir(), 'aigw-e2e-'));
  let edge = await startEdge();
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 900 },
  });
  const shot = async (name) => {
    if (!values.screenshot) return;
    mkdirSync(resolve(values.screenshot), { recursive: true });
    await page.screenshot({ path: join(resolve(values.screenshot), name), animations: 'disabled' });
  };
  const page = context.pages()[0] ?? (await context.newPage());
  let ok = false;
  try {
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    await page.locator('[data-testid="connection"][data-status="open"]').waitFor({ timeout });
    await page.locator('[data-testid^="job-"]').first().waitFor({ timeout });
    await page.locator('[data-testid^="model-row-"]').first().waitFor({ timeout });
    console.log(`reconnect: live, newest ${await newestJob(page)}`);

    await stopEdge(edge);
    await page.locator('[data-testid="stale-banner"]').waitFor({ timeout });
    console.log(`reconnect: edge stopped, page shows "${await status(page)}" with the lost-stream banner`);
    await shot('reconnect-lost.png');

    await new Promise((r) => setTimeout(r, 2000));
    const before = await newestJob(page);
    edge = await startEdge();
    await page.locator('[data-testid="connection"][data-status="open"]').waitFor({ timeout });
    await page.waitForFunction((id) => document.querySelector('[data-testid^="job-"]')?.getAttribute('data-testid') !== id, before, { timeout });
    await page.locator('[data-testid="stale-banner"]').waitFor({ state: 'detached', timeout });
    console.log(`reconnect: edge back, page live again, newest ${await newestJob(page)}`);
    await shot('reconnect-back.png');
    ok = true;
  } catch (err) {
    console.log(`reconnect: ${err.message.split('\n')[0]}`);
  } finally {
    await context.close().catch(() => {});
    await stopEdge(edge).catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  console.log(ok ? 'reconnect: PASS' : 'reconnect: FAIL');
  process.exit(ok ? 0 : 1);
}

main();
