// Browser voice end to end in headless Chromium (playwright-core, Debian's chromium): the
// fake microphone plays a WAV rendered by espeak-ng, the virtual device page talks to the Hub's
// /api/voice hands-free, the widget on another origin by push-to-talk. The Rust side
// (tests/tests/voice_browser.rs) started the broker, the demo home, the local AI server and the
// worker, and checks the devices. Prints one JSON line per step. No media endpoint runs here, so
// the device page's first session tries a WebRTC call, hears no answer and falls back to the
// WebSocket; the second is the WebSocket picked by hand.
//
// usage: node voice.mjs WORKER_URL BROKER_WS_URL OUT_DIR WAV_FILE WAV_MS WIDGET_PORT OWNER_TOKEN WIDGET_KEY
// The device page runs in a browser signed in as the owner; the widget uses its key.
import http from 'node:http';
import fs from 'node:fs';
import { launch, step, fail, sleep, signIn, voiceState } from './harness.mjs';

const [base, brokerWs, outDir, wav, wavMs, widgetPort, token, widgetKey] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
// %noloop: each capture plays the file once, then silence (the end of the utterance).
const { browser, context, logs, watch } = await launch({
  extraArgs: [`--use-file-for-fake-audio-capture=${wav}%noloop`],
  origins: [base, `http://127.0.0.1:${widgetPort}`],
});

// Waits (bounded) until a turn has finished and its answer audio has arrived.
async function waitForTurn(page, turns, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await voiceState(page);
    if (last.turns >= turns && last.audio_bytes > 0 && last.phase === 'listening') return last;
    await sleep(100);
  }
  throw new Error(`no finished turn with answer audio in ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

try {
  await signIn(context, base, token);
  await step('hands_free_on_the_device_page', async () => {
    const page = await context.newPage(); watch(page, 'device');
    await page.goto(`${base}/device?id=tab-voice&title=Voice%20tab&room=office&broker=${encodeURIComponent(brokerWs)}`);
    await page.getByTestId('status').filter({ hasText: /^online$/ }).waitFor({ timeout: 20000 });
    // Every face the tab shows, in order, from the moment voice starts.
    await page.evaluate(() => {
      window.faces = [];
      const face = document.querySelector('[data-testid="face"]');
      const note = () => {
        const e = face.dataset.expression;
        if (window.faces[window.faces.length - 1] !== e) window.faces.push(e);
      };
      note();
      new MutationObserver(note).observe(face, { attributes: true, attributeFilter: ['data-expression'] });
      // The level meter's highest reading: the fake microphone did reach the worklet.
      window.peak = 0;
      const meter = document.querySelector('[data-testid="mic-level"]');
      new MutationObserver(() => { window.peak = Math.max(window.peak, Number(meter.value)); })
        .observe(meter, { attributes: true, attributeFilter: ['value'] });
    });
    await page.getByTestId('voice-toggle').click();
    const state = await waitForTurn(page, 1, 45000 + Number(wavMs));
    const faces = await page.evaluate(() => window.faces);
    const peak = await page.evaluate(() => window.peak);
    // The tab's telemetry (every 5 s) carries the microphone's peak while voice is on: wait,
    // bounded, for a sample taken after the utterance was heard.
    let micLevels = [];
    for (let i = 0; i < 80; i++) {
      const r = await fetch(`${base}/api/devices/tab-voice`, { headers: { authorization: `Bearer ${token}` } })
        .then((r) => r.json()).catch(() => ({}));
      micLevels = (r.telemetry || []).map((s) => s.metrics.mic_level_pct).filter((v) => v !== undefined);
      if (micLevels.some((v) => v > 30)) break;
      await sleep(100);
    }
    await page.screenshot({ path: `${outDir}/device-voice.png` });
    await page.getByTestId('voice-toggle').click();
    await page.getByTestId('voice').and(page.locator('[data-phase="off"]')).waitFor({ timeout: 5000 });
    return { ...state, faces, peak_level: peak, mic_level_pct_max: Math.max(0, ...micLevels) };
  });

  await step('barge_in_on_the_device_page', async () => {
    // Voice on again (a new capture: the file plays again); while the answer plays, the
    // button cuts it off.
    const page = context.pages().find((p) => p.url().includes('/device'));
    // This time the person picks the WebSocket: no call is tried first.
    await page.getByTestId('voice-transport').selectOption('websocket');
    await page.getByTestId('voice-toggle').click();
    await page.getByTestId('voice').and(page.locator('[data-phase="speaking"]')).waitFor({ timeout: 45000 + Number(wavMs) });
    await page.getByTestId('voice-ptt').hover();
    const t0 = Date.now();
    await page.mouse.down();
    await page.getByTestId('voice').and(page.locator('[data-terminated="1"]')).waitFor({ timeout: 5000 });
    const terminatedMs = Date.now() - t0;
    const during = await voiceState(page);
    const linkDuring = during.link;
    await sleep(300);
    await page.mouse.up();
    // Nothing was said into that press: the Hub says so, and the session listens again.
    await page.getByTestId('voice-error').filter({ hasText: 'asr_empty' }).waitFor({ timeout: 10000 });
    await page.getByTestId('voice').and(page.locator('[data-phase="listening"]')).waitFor({ timeout: 10000 });
    const after = await voiceState(page);
    await page.getByTestId('voice-toggle').click();
    await page.close();
    return { press_to_terminate_ms: terminatedMs, phase_during: during.phase, link_during: linkDuring, ...after };
  });

  await step('push_to_talk_in_the_widget', async () => {
    const html = `<!doctype html><html><head><title>Shop</title></head><body>
      <h1>A product site</h1>
      <script src="${base}/widget.js" defer></script>
      <axon-widget api="${base}" key="${widgetKey}"></axon-widget></body></html>`;
    const server = http.createServer((req, res) => { res.setHeader('content-type', 'text/html'); res.end(html); });
    await new Promise((ok) => server.listen(Number(widgetPort), '127.0.0.1', ok));
    try {
      const page = await context.newPage(); watch(page, 'widget');
      await page.goto(`http://127.0.0.1:${widgetPort}/`);
      const ptt = page.getByTestId('voice-ptt');
      await ptt.waitFor({ timeout: 15000 });
      // Held for the whole utterance (the file starts when the press opens the microphone).
      await ptt.hover();
      await page.mouse.down();
      await sleep(Number(wavMs) + 700);
      await page.mouse.up();
      const state = await waitForTurn(page, 1, 45000);
      // The spoken turn is in the chat too, as the user's line and the agent's answer.
      const you = await page.getByTestId('msg-you').last().textContent();
      const axon = await page.getByTestId('msg-axon').last().textContent();
      await page.screenshot({ path: `${outDir}/widget-voice.png` });
      return { ...state, chat_you: you, chat_axon: axon };
    } finally {
      server.close();
    }
  });
} catch (e) {
  fail('unexpected', e);
} finally {
  fs.writeFileSync(`${outDir}/browser-voice.log`, logs.join('\n'));
  await browser.close();
}
