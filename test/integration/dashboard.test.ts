import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import knexFactory, { type Knex } from 'knex';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { ROOT } from '../support/cli.ts';
import { healthClient } from '../support/health.ts';
import { startTarget, type Target } from '../support/target.ts';

const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'dashboard');
const CHROMIUM = process.env.PORTALIS_CHROMIUM ?? '/usr/bin/chromium';

/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core) against the
 * service on a real port, with reports sent through the agent API.
 */
describe('dashboard', () => {
  let t: Target;
  let h: ReturnType<typeof healthClient>;
  let server: Server;
  let url: string;
  let sql: Knex;
  let browser: BrowserContext;
  let page: Page;
  const profile = mkdtempSync(path.join(os.tmpdir(), 'portalis-chromium-'));
  const foreign: string[] = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    t = await startTarget();
    h = healthClient(t);
    sql = knexFactory({ client: 'pg', connection: t.databaseUrl!, pool: { min: 0, max: 2 } });
    server = await new Promise<Server>((resolve) => {
      const s = t.app!.listen(0, '127.0.0.1', () => resolve(s));
    });
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--headless',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
      viewport: { width: 1440, height: 900 },
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('request', (r) => {
      if (!r.url().startsWith(url)) foreign.push(r.url());
    });
  });
  after(async () => {
    await browser?.close();
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await sql?.destroy();
    await t?.close();
    rmSync(profile, { recursive: true, force: true });
  });

  const cell = (id: string) => page.locator(`#grid td[data-attachment="${id}"]`);

  it('shows each state distinctly, opens an attachment with its paths and history, and follows a change without a reload', async () => {
    const a = await h.newHost({ host: 'compute-a' });
    const b = await h.newHost({ host: 'compute-b' });
    const optimal = await h.attach(a);
    const degraded = await h.attach(b, optimal.volumeId);
    const failed = await h.attach(a);
    const unknown = await h.attach(b);
    const pending = await h.attach(a);
    await h.report(a.token, optimal.attachmentId, h.body('optimal'));
    await h.report(b.token, degraded.attachmentId, h.body('optimal'));
    await h.report(b.token, degraded.attachmentId, h.body('degraded', 2, 3));
    await h.report(
      a.token,
      failed.attachmentId,
      h.body('failed', 0, 3, {
        device_path: null,
        state: 'error',
        error: { code: 'connect_failed', message: 'no portal answered' },
      }),
    );
    await h.report(b.token, unknown.attachmentId, h.body('optimal'));
    await sql('attachments')
      .where({ id: unknown.attachmentId })
      .update({ reported_at: sql.raw("now() - interval '10 minutes'") });

    const res = await page.goto(`${url}/`);
    assert.equal(res?.status(), 200);
    assert.match(res!.headers()['content-security-policy'] ?? '', /default-src 'none'/);
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('#token', t.token);
    await page.click('#login button[type=submit]');

    const expected: [string, string, string][] = [
      [optimal.attachmentId, 'optimal', '✓'],
      [degraded.attachmentId, 'degraded', '!'],
      [failed.attachmentId, 'failed', '✕'],
      [unknown.attachmentId, 'unknown', '?'],
      [pending.attachmentId, 'pending', '…'],
    ];
    for (const [id, state, symbol] of expected) {
      await cell(id).waitFor({ state: 'visible', timeout: 20_000 });
      assert.equal(await cell(id).getAttribute('data-health'), state, `${state} cell`);
      assert.equal((await cell(id).innerText()).trim(), symbol, `${state} has its own symbol, not only a colour`);
    }
    const colours = new Set<string>();
    for (const [id] of expected)
      colours.add(
        await cell(id)
          .locator('button')
          .evaluate((e) => getComputedStyle(e).backgroundColor),
      );
    assert.equal(colours.size, 5, 'five distinct colours');
    // The volume with an optimal and a degraded host rolls up to degraded; the counts are at the top.
    assert.equal(
      await page.locator(`#grid tbody th[data-volume="${optimal.volumeId}"]`).getAttribute('data-health'),
      'degraded',
    );
    for (const s of ['optimal', 'degraded', 'failed', 'unknown', 'pending'])
      assert.match(await page.locator(`#summary [data-state="${s}"]`).innerText(), new RegExp(`1 ${s}`));
    assert.equal(await page.locator('#hosts [data-host]').count(), 2);
    // Roll-ups at the top: volumes by their worst cell (the 4 volumes), hosts by theirs.
    const vr = await page.locator('[data-rollup=volumes]').innerText();
    for (const s of ['1 failed', '1 unknown', '1 degraded', '1 pending']) assert.match(vr, new RegExp(s));
    assert.doesNotMatch(vr, /optimal/, 'no volume is wholly optimal');
    const hr = await page.locator('[data-rollup=hosts]').innerText();
    assert.match(hr, /1 failed/);
    assert.match(hr, /1 unknown/);
    assert.doesNotMatch(await page.locator('#rollups').innerText(), /null|undefined/);

    // The token: in sessionStorage, never in the URL or localStorage.
    assert.equal(await page.evaluate(() => sessionStorage.getItem('portalis.adminToken')), t.token);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assert.ok(!page.url().includes(t.token));
    await page.screenshot({ path: path.join(ARTIFACTS, 'grid.png'), fullPage: true });

    // Drill-down: the degraded attachment's paths and its history.
    await cell(degraded.attachmentId).locator('button').click();
    const detail = page.locator(`#detail[data-attachment="${degraded.attachmentId}"]`);
    await detail.waitFor({ state: 'visible', timeout: 10_000 });
    const rows = detail.locator('[data-role=paths] tbody tr');
    assert.equal(await rows.count(), 3);
    const first = await rows.nth(0).locator('td').allInnerTexts();
    assert.deepEqual(first, ['nvme0', '127.0.0.1', '4420', 'tcp', 'live', 'optimized']);
    const third = await rows.nth(2).locator('td').allInnerTexts();
    assert.deepEqual(third, ['–', '127.0.0.1', '4422', 'tcp', 'missing', '–']);
    assert.match(await detail.innerText(), /\/dev\/nvme0n1/);
    assert.match(await detail.innerText(), /report age/);
    const history = await detail.locator('[data-role=events] tbody tr').allInnerTexts();
    assert.equal(history.length, 2);
    assert.match(history[0]!, /connected \/ optimal\s+connected \/ degraded\s+2\/3/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'detail-degraded.png') });

    // The failed one shows the agent's error.
    await cell(failed.attachmentId).locator('button').click();
    await page.locator(`#detail[data-attachment="${failed.attachmentId}"]`).waitFor({ timeout: 10_000 });
    assert.match(await page.locator('#detail').innerText(), /connect_failed: no portal answered/);
    await page.click('#close');

    // A change of health shows up without a reload.
    await page.evaluate(() => Object.assign(window, { __sameDocument: true }));
    await h.report(b.token, degraded.attachmentId, h.body('optimal'));
    await page.waitForSelector(`#grid td[data-attachment="${degraded.attachmentId}"][data-health="optimal"]`, {
      timeout: 20_000,
    });
    assert.equal(await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument), true);
    assert.equal(
      await page.locator(`#grid tbody th[data-volume="${optimal.volumeId}"]`).getAttribute('data-health'),
      'optimal',
    );

    // Filters: only failed cells.
    await page.uncheck('#filters input[value=optimal]');
    await page.uncheck('#filters input[value=degraded]');
    await page.uncheck('#filters input[value=unknown]');
    await page.uncheck('#filters input[value=pending]');
    await page.waitForFunction(
      () => {
        const cells = [...document.querySelectorAll('#grid td[data-health]')];
        return cells.length > 0 && cells.every((c) => c.getAttribute('data-health') === 'failed');
      },
      undefined,
      { timeout: 10_000 },
    );
    await page.screenshot({ path: path.join(ARTIFACTS, 'filtered-failed.png') });
    assert.deepEqual(foreign, [], 'nothing fetched from anywhere but the service');
  });

  it('stays usable with 300 hosts: sticky headers while scrolling, paging over volumes', async () => {
    const hosts = Array.from({ length: 300 }, (_, i) => ({
      nqn: `nqn.2014-08.org.example:wide-${randomUUID()}`,
      name: `node-${String(i).padStart(3, '0')}`,
    }));
    const vols = Array.from({ length: 300 }, () => randomUUID());
    await sql('volumes').insert(
      vols.map((id) => ({ id, name: `volume-${id}`, size_gb: 1, replicas: 3, status: 'available', multiattach: true })),
    );
    await sql('hosts').insert(hosts.map((x) => ({ nqn: x.nqn, name: x.name, last_seen_at: sql.fn.now() })));
    const states = ['optimal', 'optimal', 'optimal', 'optimal', 'degraded', 'optimal', 'failed', 'optimal'];
    const rows = [];
    for (const [vi, v] of vols.entries())
      for (let k = 0; k < 10; k++) {
        const x = hosts[(vi * 7 + k * 31) % hosts.length]!;
        const health = states[(vi + k) % states.length]!;
        rows.push({
          id: randomUUID(),
          volume_id: v,
          host_nqn: x.nqn,
          host_name: x.name,
          connector: JSON.stringify({ nqn: x.nqn, host: x.name }),
          multipath_mode: 'native',
          status: 'attached',
          agent_state: 'connected',
          health,
          paths: '[]',
          device_path: '/dev/nvme0n1',
          reported_at: sql.fn.now(),
        });
      }
    await sql.batchInsert('attachments', rows, 1000);

    await page.check('#filters input[value=optimal]');
    await page.check('#filters input[value=degraded]');
    await page.check('#filters input[value=unknown]');
    await page.check('#filters input[value=pending]');
    await page.waitForFunction(() => document.querySelectorAll('#grid thead th').length > 300, undefined, {
      timeout: 20_000,
    });
    assert.equal(await page.locator('#grid tbody tr').count(), 100, 'one page of 100 volumes');
    assert.match(await page.locator('#range').innerText(), /volumes 1–100 of 30\d/);
    const wrap = page.locator('.grid-wrap');
    await wrap.evaluate((e) => e.scrollTo(4000, 1500));
    const box = await wrap.boundingBox();
    const head = await page.locator('#grid thead th').nth(150).boundingBox();
    const rowHead = await page.locator('#grid tbody th').nth(60).boundingBox();
    assert.ok(box && head && rowHead);
    assert.ok(Math.abs(head.y - box.y) < 3, 'the host header row stays at the top of the grid');
    assert.ok(Math.abs(rowHead.x - box.x) < 3, 'the volume column stays at the left of the grid');
    await page.screenshot({ path: path.join(ARTIFACTS, 'wide-300-hosts.png') });
    await page.click('#next');
    await page.waitForFunction(
      () => /volumes 101–200/.test(document.getElementById('range')!.textContent!),
      undefined,
      {
        timeout: 10_000,
      },
    );
  });
});
