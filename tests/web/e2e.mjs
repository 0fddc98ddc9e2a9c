// End-to-end browser test of the web app in headless Chromium (playwright-core, Debian's
// chromium), against the real worker, broker and device-sim that the Rust test started.
// Prints one JSON line per step; the Rust side (tests/tests/web_e2e.rs) checks the devices.
//
// usage: node e2e.mjs PHASE WORKER_URL BROKER_WS_URL OUT_DIR OWNER_TOKEN [WIDGET_PORT WIDGET_KEY]
//   PHASE main:        the console asks to sign in and shows nothing before, then signs in;
//                      device page online, chat changes the face, console lists and plots,
//                      a tool form calls a lamp, an invalid value is refused, the activity log
//                      lists the call, take_photo, a tab with a stored account uses it, the
//                      widget with its key, both pages on a phone-sized screen
//   PHASE broker-down: the page loads with the broker down, says so, and comes online when
//                      the broker returns (the Rust side starts it after "waiting_for_broker")
//   PHASE pairing:     a fresh tab shows a pairing code, the console enters it, the tab is
//                      paired (its account in localStorage), talks with its token, reloads
//                      with its account, and the console revokes it
import http from 'node:http';
import fs from 'node:fs';
import { launch, step, fail, say, signIn } from './harness.mjs';

const [phase, base, brokerWs, outDir, token, widgetPort, widgetKey, storedPassword] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const { browser, context, logs, watch } = await launch({ origins: [base] });

// The worker's API as the owner (the test's own requests, not the pages').
async function api(path, init = {}) {
  const r = await fetch(base + path, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers || {}) } });
  return { status: r.status, body: await r.json().catch(() => null) };
}

// Signs `page` (the console) in through its form.
async function signInWithTheForm(page) {
  await page.getByTestId('owner-token').fill(token);
  await page.getByTestId('sign-in-button').click();
  await page.getByTestId('live').filter({ hasText: 'live' }).waitFor({ timeout: 15000 });
}

try {
  if (phase === 'main') {
    // The console before signing in: the form, and not one request for the site's data.
    const consolePage = await context.newPage(); watch(consolePage, 'console');
    const asked = [];
    consolePage.on('request', (r) => { const u = new URL(r.url()); if (u.pathname.startsWith('/api/')) asked.push(`${r.method()} ${u.pathname}`); });
    await step('console_asks_to_sign_in', async () => {
      await consolePage.goto(base + '/');
      await consolePage.getByTestId('sign-in').waitFor({ timeout: 15000 });
      await consolePage.getByTestId('owner-token').fill('not-the-owner-token');
      await consolePage.getByTestId('sign-in-button').click();
      const err = consolePage.getByTestId('sign-in-error');
      await err.filter({ hasText: /\S/ }).waitFor({ timeout: 10000 });
      const shown = await consolePage.locator('[data-testid="devices"], [data-testid^="device-"], [data-testid="chat"]').count();
      await consolePage.screenshot({ path: `${outDir}/console-sign-in.png` });
      return { refusal: await err.textContent(), shown, asked: [...asked] };
    });
    await step('console_signs_in', async () => {
      await signInWithTheForm(consolePage);
      const session = await consolePage.evaluate(() => fetch('/api/session').then((r) => r.json()));
      return { session };
    });

    const device = await context.newPage(); watch(device, 'device');
    const devUrl = `${base}/device?id=tab-e2e&title=Screen&room=office&broker=${encodeURIComponent(brokerWs)}`;
    await step('device_online', async () => {
      await device.goto(devUrl);
      await device.getByTestId('status').filter({ hasText: /^online$/ }).waitFor({ timeout: 20000 });
      for (let i = 0; i < 100; i++) {
        const r = await api('/api/devices/tab-e2e');
        if (r.status === 200 && r.body.state === 'ready') return { tools: r.body.tools.map((t) => t.name) };
        await new Promise((ok) => setTimeout(ok, 100));
      }
      throw new Error('tab-e2e never became ready in /api/devices');
    });
    await device.screenshot({ path: `${outDir}/device.png` });

    await step('console_lists_home', async () => {
      await consolePage.getByTestId('device-kitchen-lamp').waitFor({ timeout: 15000 });
      await consolePage.getByTestId('device-tab-e2e').waitFor({ timeout: 15000 });
      const n = await consolePage.locator('[data-testid^="device-"]').count();
      const state = await consolePage.getByTestId('device-kitchen-lamp').getAttribute('data-state');
      return { devices: n, kitchen_lamp: state };
    });

    await step('chat_makes_the_screen_happy', async () => {
      await consolePage.getByTestId('chat-input').fill('make the screen happy');
      await consolePage.getByTestId('chat-input').press('Enter');
      const answer = consolePage.getByTestId('msg-axon').last();
      await answer.filter({ hasText: 'looks happy' }).waitFor({ timeout: 10000 });
      await device.locator('[data-testid="face"][data-expression="happy"]').waitFor({ timeout: 5000 });
      const chip = await consolePage.getByTestId('tool-chip').last().textContent();
      return { answer: await answer.locator('.text').textContent(), chip };
    });
    await device.screenshot({ path: `${outDir}/device-happy.png` });

    await step('chat_asks_before_unlocking', async () => {
      await consolePage.getByTestId('chat-input').fill('unlock the front door');
      await consolePage.getByTestId('chat-input').press('Enter');
      const dialog = consolePage.getByTestId('confirm-dialog');
      await dialog.waitFor({ timeout: 10000 });
      const prompt = await dialog.locator('p').textContent();
      await consolePage.screenshot({ path: `${outDir}/console-confirm.png` });
      await consolePage.getByTestId('confirm-yes').click();
      const answer = consolePage.getByTestId('msg-axon').last();
      await answer.filter({ hasText: 'Front door lock is unlocked.' }).waitFor({ timeout: 10000 });
      return { prompt, answer: await answer.locator('.text').textContent() };
    });

    await step('console_plots_live_telemetry', async () => {
      await consolePage.getByTestId('device-kitchen-lamp').click();
      await consolePage.getByTestId('detail-title').filter({ hasText: 'Kitchen lamp' }).waitFor();
      const plot = consolePage.locator('[data-testid="plot"][data-metric="driver_temp_c"]');
      await plot.waitFor({ timeout: 10000 });
      const first = Number(await plot.getAttribute('data-points'));
      await consolePage.waitForFunction((n) => {
        const p = document.querySelector('[data-testid="plot"][data-metric="driver_temp_c"]');
        return p && Number(p.getAttribute('data-points')) > n;
      }, first, { timeout: 10000 });
      return { points_before: first, points_after: Number(await plot.getAttribute('data-points')) };
    });

    await step('tool_form_calls_the_lamp', async () => {
      const form = consolePage.getByTestId('tool-set_power');
      await form.getByTestId('field-on').check();
      await form.getByTestId('call-set_power').click();
      await form.getByTestId('result-set_power').filter({ hasText: '"on":true' }).waitFor({ timeout: 5000 });
      return { result: await form.getByTestId('result-set_power').textContent() };
    });

    await step('tool_form_refuses_an_invalid_value', async () => {
      const form = consolePage.getByTestId('tool-set_brightness');
      await form.getByTestId('field-level').fill('150');
      await form.getByTestId('call-set_brightness').click();
      const err = form.getByTestId('field-error');
      await err.waitFor({ timeout: 3000 });
      await new Promise((ok) => setTimeout(ok, 300));
      return { field_error: await err.textContent(), result: await form.getByTestId('result-set_brightness').textContent() };
    });
    await step('activity_lists_the_call', async () => {
      await consolePage.getByTestId('activity-refresh').click();
      const row = consolePage.getByTestId('activity').locator('li').filter({ hasText: 'kitchen-lamp.set_power' }).first();
      await row.waitFor({ timeout: 5000 });
      return { row: await row.textContent(), rows: await consolePage.getByTestId('activity').locator('li').count() };
    });
    await consolePage.screenshot({ path: `${outDir}/console.png`, fullPage: true });

    await step('device_telemetry_reaches_the_hub', async () => {
      // The tab reports every 5 s; wait for a sample taken after the face changed.
      let last = null;
      for (let i = 0; i < 120; i++) {
        const r = await api('/api/devices/tab-e2e');
        const t = r.body && r.body.telemetry;
        if (t && t.length) last = t[t.length - 1].metrics;
        if (last && last.expression === 'happy') return { metrics: last };
        await new Promise((ok) => setTimeout(ok, 100));
      }
      throw new Error('no telemetry showing the happy face from tab-e2e in 12 s; last: ' + JSON.stringify(last));
    });

    await step('take_photo_returns_a_jpeg', async () => {
      const r = await api('/api/devices/tab-e2e/tools/take_photo', { method: 'POST', body: '{}' });
      if (r.status !== 200) throw new Error(`HTTP ${r.status} ${JSON.stringify(r.body)}`);
      const img = r.body.content.find((c) => c.type === 'image');
      const bytes = Buffer.from(img.data, 'base64');
      return { mime: img.mimeType, jpeg: bytes[0] === 0xff && bytes[1] === 0xd8, bytes: bytes.length, size: r.body.structuredContent };
    });

    await step('stored_account_is_used', async () => {
      // A tab that paired earlier (its account in localStorage; the test made its broker
      // account) and no session: it is that device, asks for no code, and connects as itself.
      const other = await browser.newContext();
      try {
        await other.addInitScript((pw) => localStorage.setItem('axon.device', JSON.stringify({
          device: 'tab-stored', kind: 'virtual', site: 'home', username: 'tab-stored', password: pw, token: pw })), storedPassword);
        const p = await other.newPage(); watch(p, 'stored');
        const pairs = [];
        p.on('request', (r) => { if (r.url().includes('/api/pair')) pairs.push(r.url()); });
        await p.goto(`${base}/device?broker=${encodeURIComponent(brokerWs)}`);
        await p.getByTestId('status').filter({ hasText: /^online$/ }).waitFor({ timeout: 20000 });
        return { id: await p.getByTestId('device-id').textContent(), code: await p.getByTestId('screen-text').textContent(), pair_requests: pairs.length };
      } finally {
        await other.close();
      }
    });

    await step('device_pairs_by_its_code', async () => {
      // A fresh browser: the tab asks the real worker for a code and shows it. The first code's
      // expiry is played by the test; the owner then enters the second code for real (the Hub
      // makes the tab's broker account) and the tab collects it from the worker.
      const other = await browser.newContext();
      try {
        const p = await other.newPage(); watch(p, 'pairing');
        const seen = { codes: [], collects: 0, status_on_second_ask: '' };
        let id = '';
        await p.route('**/api/pair', async (route) => {
          if (seen.codes.length === 1) seen.status_on_second_ask = await p.getByTestId('status').textContent();
          const r = await route.fetch();
          seen.codes.push((await r.json()).code);
          await route.fulfill({ response: r });
        });
        await p.route('**/api/pair/collect', async (route) => {
          seen.collects++;
          if (seen.codes.length === 1) {
            return route.fulfill({ status: 410, json: { error: { code: -32602, message: 'the code expired' } } });
          }
          if (seen.collects === 2) {
            const r = await api('/api/pair/approve', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: seen.codes[1] }) });
            seen.approved = r.status;
          }
          return route.fulfill({ response: await route.fetch() });
        });
        await p.goto(`${base}/device?broker=${encodeURIComponent(brokerWs)}`);
        id = await p.getByTestId('device-id').textContent();
        await p.getByTestId('status').filter({ hasText: /^online$/ }).waitFor({ timeout: 30000 });
        const account = await p.evaluate(() => JSON.parse(localStorage.getItem('axon.device') || 'null'));
        return { id, ...seen, account_device: account && account.device, screen: await p.getByTestId('screen-text').textContent() };
      } finally {
        await other.close();
      }
    });

    await step('widget_on_another_origin', async () => {
      const page = `<!doctype html><html><head><title>Shop</title></head><body>
        <h1>A product site</h1>
        <script src="${base}/widget.js" defer></script>
        <axon-widget api="${base}" key="${widgetKey}"></axon-widget></body></html>`;
      const server = http.createServer((req, res) => { res.setHeader('content-type', 'text/html'); res.end(page); });
      await new Promise((ok) => server.listen(Number(widgetPort), '127.0.0.1', ok));
      try {
        const p = await context.newPage(); watch(p, 'widget');
        await p.goto(`http://127.0.0.1:${widgetPort}/`);
        await p.getByTestId('chat-input').fill('turn off the kitchen lamp');
        await p.getByTestId('chat-input').press('Enter');
        const answer = p.getByTestId('msg-axon').last();
        await answer.filter({ hasText: 'Kitchen lamp is off.' }).waitFor({ timeout: 15000 });
        await p.screenshot({ path: `${outDir}/widget.png` });
        return { origin: `http://127.0.0.1:${widgetPort}`, answer: await answer.locator('.text').textContent() };
      } finally {
        server.close();
      }
    });

    await step('fits_a_phone_screen', async () => {
      // 390×844 CSS pixels (a phone held upright): nothing wider than the screen, the
      // controls reachable without scrolling sideways.
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
      await phone.grantPermissions(['camera', 'microphone'], { origin: base });
      await signIn(phone, base, token);
      const widths = {};
      try {
        for (const [name, url, ready] of [
          ['console', base + '/', 'device-kitchen-lamp'],
          ['device', `${base}/device?id=tab-phone&broker=${encodeURIComponent(brokerWs)}`, 'voice-toggle'],
        ]) {
          const p = await phone.newPage(); watch(p, `${name}-phone`);
          await p.goto(url);
          await p.getByTestId(ready).waitFor({ timeout: 15000 });
          const w = await p.evaluate(() => ({ scroll: document.documentElement.scrollWidth, screen: window.innerWidth }));
          await p.screenshot({ path: `${outDir}/${name}-phone.png`, fullPage: true });
          if (w.scroll > w.screen + 1) throw new Error(`${name}: ${w.scroll} px wide on a ${w.screen} px screen`);
          widths[name] = w;
        }
      } finally {
        await phone.close();
      }
      return { widths };
    });
  } else if (phase === 'broker-down') {
    await signIn(context, base, token);
    await context.addInitScript((pw) => localStorage.setItem('axon.device', JSON.stringify({
      device: 'tab-late', kind: 'virtual', site: 'home', username: 'tab-late', password: pw, token: pw })), storedPassword);
    const page = await context.newPage(); watch(page, 'device');
    await page.goto(`${base}/device?id=tab-late&broker=${encodeURIComponent(brokerWs)}`);
    await step('broker_down_is_shown', async () => {
      await page.getByTestId('status').filter({ hasText: /reconnecting|offline|cannot/ }).waitFor({ timeout: 10000 });
      return { status: await page.getByTestId('status').textContent() };
    });
    say({ step: 'waiting_for_broker' });
    await step('online_when_the_broker_returns', async () => {
      await page.getByTestId('status').filter({ hasText: /^online$/ }).waitFor({ timeout: 40000 });
    });
  } else if (phase === 'pairing') {
    // A fresh browser: no session, no account. The tab proposes its own id and shows a code.
    const tab = await context.newPage(); watch(tab, 'device');
    let id = '';
    let code = '';
    // Each step needs the one before: the first failure ends the phase.
    let ok = await step('device_shows_a_code', async () => {
      await tab.goto(`${base}/device?broker=${encodeURIComponent(brokerWs)}`);
      const shown = tab.getByTestId('screen-text');
      await shown.filter({ hasText: /^[0-9A-Z]{4}-[0-9A-Z]{4}$/ }).waitFor({ timeout: 15000 });
      code = await shown.textContent();
      id = await tab.getByTestId('device-id').textContent();
      await tab.screenshot({ path: `${outDir}/device-pairing.png` });
      return { code, id, status: await tab.getByTestId('status').textContent() };
    });
    // The owner, in another browser, signs in and enters the code.
    const admin = await browser.newContext();
    const consolePage = await admin.newPage(); watch(consolePage, 'console');
    ok = ok && await step('console_enters_the_code', async () => {
      await consolePage.goto(base + '/');
      await signInWithTheForm(consolePage);
      await consolePage.getByTestId('pair-input').fill(code);
      await consolePage.getByTestId('pair-approve').click();
      const out = consolePage.getByTestId('pair-outcome');
      await out.filter({ hasText: /^[^…]/ }).waitFor({ timeout: 15000 });
      const outcome = await out.textContent();
      if (!outcome.startsWith('paired')) throw new Error(`the console says: ${outcome}`);
      await consolePage.getByTestId(`revoke-${id}`).waitFor({ timeout: 5000 });
      return { outcome };
    });
    ok = ok && await step('device_is_paired', async () => {
      await tab.getByTestId('status').filter({ hasText: /^online$/ }).waitFor({ timeout: 20000 });
      const account = await tab.evaluate(() => JSON.parse(localStorage.getItem('axon.device') || 'null'));
      return {
        id, code: await tab.getByTestId('screen-text').textContent(),
        account_device: account && account.device, has_password: Boolean(account && account.password),
        has_token: Boolean(account && account.token),
      };
    });
    ok = ok && await step('paired_tab_talks_with_its_token', async () => {
      // The voice socket carries the device's token as its subprotocol: the Hub takes it.
      await tab.getByTestId('voice-toggle').click();
      await tab.locator('[data-testid="voice"][data-phase="listening"]').waitFor({ timeout: 15000 });
      const error = await tab.getByTestId('voice-error').textContent();
      await tab.getByTestId('voice-toggle').click();
      return { voice_error: error };
    });
    ok = ok && await step('reload_uses_the_stored_account', async () => {
      await tab.reload();
      await tab.getByTestId('status').filter({ hasText: /^online$/ }).waitFor({ timeout: 20000 });
      return { id: await tab.getByTestId('device-id').textContent(), code: await tab.getByTestId('screen-text').textContent() };
    });
    ok = ok && await step('console_revokes_the_device', async () => {
      await consolePage.getByTestId(`revoke-${id}`).click();
      await consolePage.getByTestId('pair-outcome').filter({ hasText: `revoked ${id}` }).waitFor({ timeout: 10000 });
      await consolePage.getByTestId(`revoke-${id}`).waitFor({ state: 'detached', timeout: 5000 });
      const r = await api('/api/paired');
      return { paired: r.body && r.body.paired };
    });
    await admin.close();
  }
} catch (e) {
  fail('unexpected', e);
} finally {
  fs.writeFileSync(`${outDir}/browser-${phase}.log`, logs.join('\n'));
  await browser.close();
}
