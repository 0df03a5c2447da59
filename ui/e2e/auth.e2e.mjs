#!/usr/bin/env node
// Browser check of the dashboard against an edge with auth on (played by e2e/mock-edge.mjs
// with an admin key): the data routes answer 401 without the key, the page asks for it,
// refuses a wrong one, shows live data (cost included) with the right one, keeps it for
// the tab only (a reload keeps it, a new tab asks again), never shows it in the URL, the
// HTML or the console, and forgets it on request. ?demo=1 still works without a key.
//
//   npm run build && node e2e/auth.e2e.mjs [--port 8090] [--screenshot DIR] [--timeout 20000]
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
    port: { type: 'string', default: '8090' },
    screenshot: { type: 'string' },
    timeout: { type: 'string', default: '20000' },
  },
});
const port = Number(values.port);
const timeout = Number(values.timeout) || 20000;
const base = `http://127.0.0.1:${port}`;
const KEY = `sk-e2e-admin-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
const WRONG = 'sk-e2e-wrong-key-0000000000';

function startEdge() {
  // The key goes through the environment, not argv (as AIGW_ADMIN_KEY does for the edge).
  const child = spawn(process.execPath, [join(here, 'mock-edge.mjs'), '--port', String(port), '--admin-key-env', 'AIGW_E2E_ADMIN_KEY'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, AIGW_E2E_ADMIN_KEY: KEY },
  });
  return new Promise((ok, fail) => {
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`mock edge exited ${code}`)));
    child.stdout.once('data', () => ok(child));
  });
}

function stopEdge(child) {
  return new Promise((ok) => {
    if (!child || child.exitCode !== null) return ok();
    child.removeAllListeners('exit');
    child.once('exit', ok);
    child.kill('SIGTERM');
  });
}

function check(cond, what) {
  if (!cond) throw new Error(what);
  console.log(`auth: ok - ${what}`);
}

//  The routes themselves: 401 with the edge's error shape, 200 with the key.
async function checkRoutes() {
  for (const path of ['/v1/aigw/events', '/metrics']) {
    const r = await fetch(base + path);
    const body = await r.json().catch(() => null);
    check(r.status === 401 && body?.error?.type === 'invalid_request_error' && body?.error?.code === 'invalid_api_key', `GET ${path} without a key answers 401 invalid_api_key`);
  }
  const m = await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${KEY}` } });
  check(m.status === 200 && (await m.text()).includes('aigw_edge_cost_usd_total'), 'GET /metrics with the admin key answers 200');
  const s = await fetch(`${base}/`);
  check(s.status === 200, 'the static files stay open');
}

const sel = {
  form: '[data-testid="admin-key-form"]',
  error: '[data-testid="admin-key-error"]',
  open: '[data-testid="connection"][data-status="open"]',
};

async function submitKey(page, key) {
  const form = page.locator(sel.form);
  await form.getByLabel('Admin key').fill(key);
  await form.getByRole('button', { name: /connect/i }).click();
}

const stored = (page) => page.evaluate(() => sessionStorage.getItem('aigw.adminKey'));

async function main() {
  const profile = mkdtempSync(join(tmpdir(), 'aigw-e2e-'));
  const edge = await startEdge();
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 900 },
  });
  const consoleTexts = [];
  const watch = (p) => {
    p.on('console', (msg) => consoleTexts.push(msg.text()));
    p.on('pageerror', (err) => consoleTexts.push(err.message));
    return p;
  };
  const page = watch(context.pages()[0] ?? (await context.newPage()));
  const shot = async (p, name) => {
    if (!values.screenshot) return;
    mkdirSync(resolve(values.screenshot), { recursive: true });
    await p.screenshot({ path: join(resolve(values.screenshot), name), fullPage: true, animations: 'disabled' });
  };
  const leaked = async (p) =>
    (await p.evaluate((k) => [location.href, document.documentElement.outerHTML].some((t) => t.includes(k)), KEY)) ||
    consoleTexts.some((t) => t.includes(KEY));
  let ok = false;
  try {
    await checkRoutes();

    await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
    await page.locator(sel.form).waitFor({ timeout });
    check((await page.locator('[data-testid="connection"]').getAttribute('data-status')) === 'unauthorized', 'the page asks for the admin key on 401');
    check((await page.locator(sel.form).getByLabel('Admin key').getAttribute('type')) === 'password', 'the key input is a password field');
    await shot(page, 'auth-prompt.png');

    await submitKey(page, WRONG);
    await page.locator(sel.error).waitFor({ timeout });
    check(/did not accept/.test(await page.locator(sel.error).textContent()), 'a wrong key shows the form again with an error');
    check((await stored(page)) === null, 'a refused key is not kept');
    await shot(page, 'auth-wrong-key.png');

    await submitKey(page, KEY);
    await page.locator(sel.open).waitFor({ timeout });
    await page.locator('[data-testid^="model-row-"]').first().waitFor({ timeout });
    await page.locator('[data-testid^="job-"]').first().waitFor({ timeout });
    await page.waitForFunction(() => /\$\d/.test(document.querySelector('[data-testid="tile-cost"] .tile-value')?.textContent ?? ''), null, { timeout });
    await page.locator('[data-testid="model-cost"]').first().waitFor({ timeout });
    const spend = await page.locator('[data-testid="tile-cost"] .tile-value').textContent();
    const saved = await page.locator('[data-testid="tile-saved"] .tile-value').textContent();
    check(true, `with the key: live, models, jobs, spend ${spend}, saved by cancelling ${saved}`);
    check((await stored(page)) === KEY, 'the key is kept in sessionStorage (aigw.adminKey)');
    check(!(await leaked(page)), 'the key is not in the URL, the HTML or the console');
    await page.waitForTimeout(600);
    await shot(page, 'auth-live.png');

    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.locator(sel.open).waitFor({ timeout });
    check((await page.locator(sel.form).count()) === 0, 'a reload of the tab keeps the key');

    const other = watch(await context.newPage());
    await other.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
    await other.locator(sel.form).waitFor({ timeout });
    check((await stored(other)) === null, 'another tab does not get the key');
    await other.close();

    await page.locator('[data-testid="forget-key"]').click();
    await page.locator(sel.form).waitFor({ timeout });
    check((await stored(page)) === null && (await page.locator(sel.error).count()) === 0, '"Forget key" clears it and asks again');

    await page.goto(`${base}/?demo=1`, { waitUntil: 'domcontentloaded' });
    await page.locator('[data-testid="demo-flag"]').waitFor({ timeout });
    await page.locator('[data-testid^="model-row-"]').first().waitFor({ timeout });
    check((await page.locator(sel.form).count()) === 0, '?demo=1 works without a key');
    check(!(await leaked(page)), 'still no key in the console');
    ok = true;
  } catch (err) {
    console.log(`auth: ${err.message.split('\n')[0]}`);
    await shot(page, 'auth-failure.png').catch(() => {});
  } finally {
    await context.close().catch(() => {});
    await stopEdge(edge).catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  console.log(ok ? 'auth: PASS' : 'auth: FAIL');
  process.exit(ok ? 0 : 1);
}

main();
