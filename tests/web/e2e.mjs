// End-to-end browser test of the web app in headless Chromium (playwright-core, Debian's
// chromium), against the real worker, broker and device-sim that the Rust test started.
// Prints one JSON line per step; the Rust side (tests/tests/web_e2e.rs) checks the devices.
//
// usage: node e2e.mjs PHASE WORKER_URL BROKER_WS_URL OUT_DIR [WIDGET_PORT]
//   PHASE main:        device page online, chat changes the face, console lists and plots,
//                      a tool form calls a lamp, an invalid value is refused, take_photo, widget,
//                      both pages on a phone-sized screen
//   PHASE broker-down: the page loads with the broker down, says so, and comes online when
//                      the broker returns (the Rust side starts it after "waiting_for_broker")
import http from 'node:http';
import fs from 'node:fs';
import { launch, step, fail, say } from './harness.mjs';

const [phase, base, brokerWs, outDir, widgetPort] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const { browser, context, logs, watch } = await launch({ origins: [base] });

async function api(path, init) {
  const r = await fetch(base + path, init);
  return { status: r.status, body: await r.json().catch(() => null) };
}

try {
  if (phase === 'main') {
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

    const consolePage = await context.newPage(); watch(consolePage, 'console');
    await step('console_lists_home', async () => {
      await consolePage.goto(base + '/');
      await consolePage.getByTestId('live').filter({ hasText: 'live' }).waitFor({ timeout: 15000 });
      await consolePage.getByTestId('device-kitchen-lamp').waitFor({ timeout: 15000 });
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

    await step('widget_on_another_origin', async () => {
      const page = `<!doctype html><html><head><title>Shop</title></head><body>
        <h1>A product site</h1>
        <script src="${base}/widget.js" defer></script>
        <axon-widget api="${base}" user="shopper"></axon-widget></body></html>`;
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
  }
} catch (e) {
  fail('unexpected', e);
} finally {
  fs.writeFileSync(`${outDir}/browser-${phase}.log`, logs.join('\n'));
  await browser.close();
}
