#!/usr/bin/env node
// End-to-end check of the dashboard in a real browser (Debian's Chromium via playwright-core):
// waits for the expected model rows and a job won by the expected model, saves a screenshot.
//
//   node e2e/dashboard.e2e.mjs --url http://127.0.0.1:8080/ --screenshot out.png \
//        --expect-models fast-sim,slow-sim --expect-winner fast-sim [--timeout 20000] [--demo] \
//        [--admin-key KEY | --admin-key-env NAME] [--expect-cost]
//
// With an admin key (edge/auth = on) it waits for the dashboard's key form, types the key
// and submits it; it fails if the key then shows up in the URL or the page's HTML.
// --expect-cost also waits for the spend tile to show a dollar figure.
//
// Exit 0 when everything expected showed up, 1 (printing what was missing) otherwise, 2 on
// bad usage or when the browser cannot start.
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const USAGE =
  'usage: node e2e/dashboard.e2e.mjs --url URL --screenshot PATH [--expect-models a,b] ' +
  '[--expect-winner MODEL] [--timeout MS] [--demo] [--width 1440] [--height 900] ' +
  '[--admin-key KEY | --admin-key-env NAME] [--expect-cost]';

function options() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      screenshot: { type: 'string' },
      'expect-models': { type: 'string', default: '' },
      'expect-winner': { type: 'string', default: '' },
      timeout: { type: 'string', default: '20000' },
      demo: { type: 'boolean', default: false },
      width: { type: 'string', default: '1440' },
      height: { type: 'string', default: '900' },
      'admin-key': { type: 'string' },
      'admin-key-env': { type: 'string' },
      'expect-cost': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help || !values.url || !values.screenshot) {
    console.error(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  const adminKey = values['admin-key'] ?? (values['admin-key-env'] ? process.env[values['admin-key-env']] : undefined);
  if (values['admin-key-env'] && !adminKey) {
    console.error(`e2e: ${values['admin-key-env']} is not set`);
    process.exit(2);
  }
  const url = new URL(values.url);
  if (values.demo) url.searchParams.set('demo', '1');
  return {
    url: url.toString(),
    screenshot: resolve(values.screenshot),
    models: values['expect-models'].split(',').map((s) => s.trim()).filter(Boolean),
    winner: values['expect-winner'].trim(),
    timeout: Number(values.timeout) > 0 ? Number(values.timeout) : 20000,
    width: Number(values.width) || 1440,
    height: Number(values.height) || 900,
    adminKey: adminKey || null,
    cost: values['expect-cost'],
  };
}

const cssString = (s) => JSON.stringify(String(s));

//  Resolves to null when `selector` became visible, else to `what` (a description of the miss).
async function expectVisible(page, selector, what, timeout) {
  try {
    await page.locator(selector).first().waitFor({ state: 'visible', timeout });
    return null;
  } catch {
    return what;
  }
}

//  Loads `url`, retrying while the server is not up yet (until `deadline`).
async function open(page, url, deadline) {
  for (;;) {
    try {
      const response = await page.goto(url, { waitUntil: 'domcontentloaded', timeout: Math.max(1000, deadline - Date.now()) });
      if (response) return response;
      throw new Error('no response');
    } catch (err) {
      if (Date.now() + 500 >= deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function main() {
  const opt = options();
  const profile = mkdtempSync(join(tmpdir(), 'aigw-e2e-'));
  let context;
  try {
    // A persistent context is how playwright takes a fresh --user-data-dir.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: [
        '--headless=new',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: opt.width, height: opt.height },
    });
  } catch (err) {
    console.error(`e2e: cannot start chromium: ${err.message}`);
    rmSync(profile, { recursive: true, force: true });
    process.exit(2);
  }

  const problems = [];
  const pageErrors = [];
  let code = 1;
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => pageErrors.push(`page error: ${err.message}`));
    const consoleTexts = [];
    page.on('console', (msg) => {
      consoleTexts.push(msg.text());
      if (msg.type() === 'error') pageErrors.push(`console error: ${msg.text()}`);
    });
    const response = await open(page, opt.url, Date.now() + opt.timeout);
    if (!response.ok()) problems.push(`GET ${opt.url} answered ${response.status()}`);

    if (opt.adminKey) {
      // edge/auth = on: the events stream answers 401 and the page asks for the key.
      const form = page.locator('[data-testid="admin-key-form"]');
      try {
        await form.waitFor({ state: 'visible', timeout: opt.timeout });
        await form.getByLabel('Admin key').fill(opt.adminKey);
        await form.getByRole('button', { name: /connect/i }).click();
        await form.waitFor({ state: 'detached', timeout: opt.timeout });
        console.log('e2e: entered the admin key in the key form');
      } catch (err) {
        problems.push(`admin key: ${err.message.split('\n')[0]}`);
      }
    }

    const checks = opt.models.map((m) =>
      expectVisible(page, `[data-testid=${cssString(`model-row-${m}`)}]`, `model row "${m}" (data-testid=model-row-${m})`, opt.timeout),
    );
    if (opt.winner) {
      const sel = `[data-testid^="job-"][data-winner=${cssString(opt.winner)}] [data-role="winner"]`;
      checks.push(expectVisible(page, sel, `a job in the request log won by "${opt.winner}" with the winner marked`, opt.timeout));
    }
    if (opt.cost) {
      checks.push(
        page
          .waitForFunction(() => /\$\d/.test(document.querySelector('[data-testid="tile-cost"] .tile-value')?.textContent ?? ''), null, { timeout: opt.timeout })
          .then(() => null, () => 'the spend tile with a dollar figure (data-testid=tile-cost)'),
      );
    }
    for (const miss of await Promise.all(checks)) if (miss) problems.push(`missing: ${miss}`);
    if (opt.adminKey) {
      const leak = await page.evaluate((k) => [document.location.href, document.documentElement.outerHTML].some((t) => t.includes(k)), opt.adminKey);
      if (leak) problems.push('the admin key appears in the URL or the page HTML');
      if (consoleTexts.some((t) => t.includes(opt.adminKey))) problems.push('the admin key appears in the console');
    }

    // Let the newest data render; finite entry animations are skipped to their end state.
    await page.waitForTimeout(600);
    mkdirSync(dirname(opt.screenshot), { recursive: true });
    await page.screenshot({ path: opt.screenshot, fullPage: true, animations: 'disabled' });

    const summary = await page.evaluate(() => ({
      connection: document.querySelector('[data-testid="connection"]')?.getAttribute('data-status') ?? 'absent',
      models: [...document.querySelectorAll('[data-testid^="model-row-"]')].map(
        (r) => `${r.getAttribute('data-testid').slice('model-row-'.length)}=${r.getAttribute('data-status')}`,
      ),
      jobs: document.querySelectorAll('[data-testid^="job-"]').length,
      winners: [...new Set([...document.querySelectorAll('[data-testid^="job-"][data-winner]')].map((j) => j.getAttribute('data-winner')))],
      workers: document.querySelectorAll('[data-testid^="worker-"]').length,
      cost: document.querySelector('[data-testid="tile-cost"] .tile-value')?.textContent ?? null,
    }));
    console.log(
      `e2e: stream ${summary.connection}; models ${summary.models.join(', ') || 'none'}; ` +
        `${summary.jobs} jobs (winners: ${summary.winners.join(', ') || 'none'}); ${summary.workers} workers` +
        (summary.cost ? `; spend ${summary.cost}` : ''),
    );
    console.log(`e2e: screenshot ${opt.screenshot}`);
    code = problems.length ? 1 : 0;
  } catch (err) {
    problems.push(`e2e error: ${err.message}`);
  } finally {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  for (const p of problems) console.log(`e2e: ${p}`);
  if (problems.length) for (const e of pageErrors.slice(0, 10)) console.log(`e2e: ${e}`);
  console.log(code === 0 ? 'e2e: PASS' : 'e2e: FAIL');
  process.exit(code);
}

main();
