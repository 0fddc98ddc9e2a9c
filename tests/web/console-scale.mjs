// The console with a big site in headless Chromium (playwright-core, Debian's chromium), against
// the real worker, broker and fleet that tests/tests/console_scale.rs started. One JSON line
// per step.
//
// usage: node console-scale.mjs WORKER_URL OWNER_TOKEN DEVICES OUT_DIR
//   first_paint:  the signed-in console shows its rooms, closed, and then every device listed
//                 (nav data-count), drawing no device button while every room is closed
//   search:       "Lamp 1234" finds that one lamp; picking it shows its detail
//   virtual_list: the big room, opened, draws only the rows in view; scrolled to its end it
//                 draws the last lamp and no longer the first
import fs from 'node:fs';
import { launch, step, fail, sleep } from './harness.mjs';

const [base, token, devices, outDir] = process.argv.slice(2);
const total = Number(devices);
fs.mkdirSync(outDir, { recursive: true });
const { browser, context, logs, watch } = await launch({ origins: [base] });
const buttons = (page) => page.locator('[data-testid="devices"] [data-testid^="device-"]').count();

try {
  const r = await context.request.post(`${base}/api/session`, { data: { token } });
  if (r.status() !== 200) throw new Error(`sign-in: HTTP ${r.status()}`);
  const page = await context.newPage(); watch(page, 'console');

  await step('first_paint', async () => {
    await page.goto(base + '/');
    await page.locator('[data-testid="devices"] details.room').first().waitFor({ timeout: 20000 });
    // Milliseconds since the navigation started, in the page's own clock.
    const firstRoomsMs = await page.evaluate(() => Math.round(performance.now()));
    await page.locator(`[data-testid="devices"][data-count="${total}"]`).waitFor({ timeout: 60000 });
    const allListedMs = await page.evaluate(() => Math.round(performance.now()));
    const rooms = await page.locator('[data-testid="devices"] details.room').count();
    const open = await page.locator('[data-testid="devices"] details.room[open]').count();
    const drawn = await buttons(page);
    if (open !== 0 || drawn !== 0) throw new Error(`rooms open ${open}, buttons drawn ${drawn}: a big site's rooms start closed`);
    await page.screenshot({ path: `${outDir}/console-scale.png` });
    return { first_rooms_ms: firstRoomsMs, all_listed_ms: allListedMs, rooms, open_rooms: open, buttons: drawn };
  });

  await step('search', async () => {
    const t0 = Date.now();
    await page.getByTestId('search-devices').fill('Lamp 1234');
    await page.getByTestId('device-scale-1234').waitFor({ timeout: 10000 });
    const searchMs = Date.now() - t0;
    const found = await buttons(page);
    if (found !== 1) throw new Error(`"Lamp 1234" drew ${found} devices`);
    await page.getByTestId('device-scale-1234').click();
    const title = await page.getByTestId('detail-title').textContent({ timeout: 10000 });
    if (title !== 'Lamp 1234') throw new Error(`the detail shows ${title}`);
    await page.getByTestId('search-devices').fill('');
    return { search_ms: searchMs, found, detail: title };
  });

  await step('virtual_list', async () => {
    const room = page.locator('[data-testid="devices"] details.room[data-room="no room"]');
    await room.locator('summary').click();
    const box = page.getByTestId('rows-no room');
    await box.waitFor({ timeout: 10000 });
    await page.getByTestId('device-scale-1').waitFor({ timeout: 10000 });
    const drawnAtTop = await buttons(page);
    if (drawnAtTop > 40) throw new Error(`an open room of ${total - 13} lamps drew ${drawnAtTop} buttons`);
    // Sorted by title: "Lamp 999" is the last of the lamps ("Lamp 1", "Lamp 10", … "Lamp 999").
    await box.evaluate((el) => { el.scrollTop = el.scrollHeight; });
    await page.getByTestId('device-scale-999').waitFor({ timeout: 10000 });
    await sleep(100);
    const firstGone = (await page.getByTestId('device-scale-1').count()) === 0;
    if (!firstGone) throw new Error('the first lamp is still drawn at the end of the list');
    const drawnAtEnd = await buttons(page);
    if (drawnAtEnd > 40) throw new Error(`${drawnAtEnd} buttons drawn at the end`);
    return { drawn_at_top: drawnAtTop, drawn_at_end: drawnAtEnd };
  });
} catch (e) {
  fail('unexpected', e);
} finally {
  fs.writeFileSync(`${outDir}/browser-console-scale.log`, logs.join('\n'));
  await browser.close();
}
