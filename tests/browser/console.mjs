// Drives the web console in headless Chromium (Debian's `chromium`, driven by playwright-core;
// nothing is downloaded) through what a collections team does: sign in, find a claim's
// timeline, open a fired rule, backtest a changed rule and read the diff, retry a dead action
// as an operator and be refused as a reader. Saves a screenshot of each page.
//
// Run by tests/it/console.rs against a real engine; by hand:
//   CONSOLE_URL=http://127.0.0.1:8080 READER_TOKEN=... OPERATOR_TOKEN=... CLAIM=C-1 \
//   RULE=escalate CHANGED_CLAIM=C-2 node tests/browser/console.mjs

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) fail(`${name} is not set`);
  return v;
};
function fail(message) {
  console.error(`console test failed: ${message}`);
  process.exit(1);
}

const base = env('CONSOLE_URL').replace(/\/$/, '');
const reader = env('READER_TOKEN');
const operator = env('OPERATOR_TOKEN');
const claim = env('CLAIM');
const changedClaim = env('CHANGED_CLAIM');
const ruleId = env('RULE');
const shots = env('SCREENSHOTS', 'target/console-screenshots');
const chromiumPath = env('CHROMIUM', '/usr/bin/chromium');

if (!existsSync(chromiumPath)) fail(`no browser at ${chromiumPath}: run .ci/tools (it installs Debian's chromium)`);
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  fail(`playwright-core is not installed in tests/browser: run .ci/tools (npm ci there): ${e.message}`);
}
mkdirSync(shots, { recursive: true });

const done = [];
const problems = [];
const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, reducedMotion: 'reduce' });
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[134]/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(base)) problems.push(`request to another origin: ${r.url()}`);
  });
  const shot = async (name, p = page) => {
    await p.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  };
  const step = async (name, fn) => {
    try {
      await fn();
      done.push(name);
      console.log(`ok: ${name}`);
    } catch (e) {
      await shot(`failed-${name.replace(/\W+/g, '-')}`).catch(() => {});
      throw new Error(`${name}: ${e.message.split('\n')[0]}`);
    }
  };
  const expectText = async (locator, text) => {
    await locator.filter({ hasText: text }).first().waitFor();
  };
  const signIn = async (token) => {
    await page.goto(`${base}/console/`);
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  };

  await step('an unknown token is refused at sign-in', async () => {
    await page.goto(`${base}/console/`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await shot('signin');
    await page.getByLabel('API token').fill('sbt_not_a_token');
    await page.keyboard.press('Enter');
    await expectText(page.locator('.problem'), 'not known');
  });

  await step('a reader signs in and sees the overview', async () => {
    await signIn(reader);
    await expectText(page.locator('#who'), 'reader (read)');
    await page.locator('svg.chart rect.bar').first().waitFor({ state: 'attached' });
    const drawn = await page.locator('svg.chart rect.bar').evaluateAll((bars) => bars.filter((b) => Number(b.getAttribute('height')) > 0).length);
    if (drawn === 0) throw new Error('the chart has no bar above zero');
    const tile = page.locator('a.tile', { hasText: 'Dead actions' });
    await tile.locator('.tile-value', { hasText: /^[1-9]/ }).waitFor();
    await page.getByRole('link', { name: ruleId }).first().waitFor();
    await shot('overview');
  });

  await step("the claim's timeline lists its events and firings in order", async () => {
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Timeline' }).click();
    await page.getByLabel('Reference').fill(claim);
    await page.getByRole('button', { name: 'Show timeline' }).click();
    await page.getByRole('heading', { name: `Timeline of claim ${claim}` }).waitFor();
    const entries = page.locator('ol.timeline > li');
    await expectText(entries, 'promise_to_pay.expired from');
    await expectText(entries, 'fired');
    const kinds = await entries.locator('.badge').allTextContents();
    if (kinds[0] !== 'event') throw new Error(`the first entry is ${kinds[0]}, not the event`);
    const times = await entries.locator('time').evaluateAll((ts) => ts.map((t) => t.getAttribute('datetime')));
    if ([...times].sort().join() !== times.join()) throw new Error(`not in time order: ${times}`);
    await shot('timeline');
    // On a phone, the same page (the token is this tab's: the same tab, narrower).
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) throw new Error(`the phone page scrolls sideways by ${overflow} px`);
    await shot('timeline-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step('an event shows its payload and why each rule did or did not fire', async () => {
    await page.locator('ol.timeline > li').first().getByRole('link', { name: 'event' }).click();
    await page.getByRole('heading', { level: 1, name: /^Event / }).waitFor();
    const why = page.locator('section', { hasText: 'What the rules did' });
    await expectText(why.locator('tr'), ruleId);
    await expectText(why.locator('tr'), 'not_matched');
    await shot('event');
  });

  await step('a fired rule shows its highlighted source, versions and recent firings', async () => {
    await page.locator('section', { hasText: 'What the rules did' }).getByRole('link', { name: ruleId }).click();
    await page.getByRole('heading', { level: 1, name: `Rule ${ruleId}` }).waitFor();
    await page.locator('pre.yaml .y-key', { hasText: 'id' }).first().waitFor();
    await expectText(page.locator('section', { hasText: 'Recent firings' }).locator('tbody tr'), 'fired');
    await expectText(page.locator('section', { hasText: 'Versions' }).locator('tbody tr'), 'in force now');
    await shot('rule');
  });

  await step('a reader may not retry a dead action', async () => {
    await page.goto(`${base}/console/#/actions?status=dead`);
    const row = page.locator('tbody tr').first();
    await row.waitFor();
    const retry = row.getByRole('button', { name: /^Retry/ });
    if (!(await retry.isDisabled())) throw new Error('the Retry button is enabled for a reader');
    await expectText(page.locator('.role-note'), 'needs the operate role');
    const id = (await row.locator('td').first().textContent()).trim();
    const status = await page.evaluate(async ([id, token]) => (await fetch(`/api/v1/actions/${id}/retry`, {
      method: 'POST', headers: { Authorization: `Bearer ${token}` },
    })).status, [id, reader]);
    if (status !== 403) throw new Error(`the API answered ${status} to a reader's retry`);
    await shot('actions-reader');
  });

  await step('the playground loads a copy of the rule to edit', async () => {
    await page.goto(`${base}/console/#/playground?rule=${encodeURIComponent(ruleId)}`);
    const editor = page.getByLabel('Rule (YAML)');
    await page.waitForFunction((id) => document.getElementById('rule-text')?.value.includes(`id: ${id}`), ruleId);
    await editor.fill((await editor.inputValue()).replace(/> *100\b/, '> 20'));
    await page.locator('.preview .y-number', { hasText: '20' }).first().waitFor();
    await shot('playground');
  });

  await step('a playground backtest of a changed threshold shows the diff', async () => {
    // The edited copy from the step before: the threshold lowered to 20.
    await page.getByRole('button', { name: 'Check and run tests' }).click();
    await page.locator('#playground-result .ok', { hasText: 'valid' }).waitFor();
    await page.getByRole('button', { name: 'Run backtest' }).click();
    const diff = page.locator('#playground-result .diff tr', { hasText: `${ruleId} (edited)` });
    await diff.waitFor({ timeout: 30000 });
    await expectText(diff.locator('.added'), 'evt_');
    await shot('playground-backtest');
    // The event that fires now and did not then is the changed claim's.
    await diff.locator('.added a').first().click();
    await expectText(page.locator('main'), changedClaim);
  });

  await step('an operator retries a dead action', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(operator);
    await page.goto(`${base}/console/#/actions?status=dead`);
    const row = page.locator('tbody tr').first();
    await row.waitFor();
    const id = (await row.locator('td').first().textContent()).trim();
    await row.getByRole('button', { name: /^Retry/ }).click();
    await page.locator('p.ok[role=status]').waitFor();
    await shot('actions-operator-retried');
    await page.goto(`${base}/console/#/actions/${id}`);
    await page.getByRole('heading', { level: 1, name: /^Action / }).waitFor();
    await expectText(page.locator('section', { hasText: 'Attempts' }).locator('tbody tr'), 'retry');
    await shot('action');
  });

  await step('the keyboard reaches the pages and shows focus', async () => {
    await page.goto(`${base}/console/#/`);
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.keyboard.press('Tab');
    const first = await page.evaluate(() => document.activeElement.textContent);
    if (first !== 'Skip to content') throw new Error(`the first Tab stop is '${first}'`);
    for (let i = 0; i < 3; i++) await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      return { text: el.textContent, outline: getComputedStyle(el).outlineStyle };
    });
    if (focused.text !== 'Timeline' || focused.outline === 'none') {
      throw new Error(`Tab reached '${focused.text}' with outline ${focused.outline}`);
    }
    // Enter follows the link, and focus moves to the page's content.
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Timeline' }).waitFor();
    const inMain = await page.evaluate(() => document.getElementById('main').contains(document.activeElement));
    if (!inMain) throw new Error('after following a link, focus is not in the page content');
  });
} catch (e) {
  problems.unshift(e.message);
} finally {
  await browser.close();
}
if (problems.length) fail(problems.join('\n'));
console.log(`console: ${done.length} flows passed; screenshots in ${shots}`);
