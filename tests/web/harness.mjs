// What the browser scripts share: Debian's headless Chromium with fake media devices, one JSON
// line per step on stdout (read by tests/src/peer.rs), and the page console kept for the log.
import { chromium } from 'playwright-core';

export const say = (o) => console.log(JSON.stringify(o));
export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

export function fail(step, e) {
  say({ step, error: String((e && e.stack) || e) });
  process.exitCode = 1;
}

// Runs `fn` as step `name`: prints `{step, ok, ms, ...what fn returned}`, or `{step, error}`.
export async function step(name, fn) {
  const t0 = Date.now();
  try {
    const extra = await fn();
    say({ step: name, ok: true, ms: Date.now() - t0, ...(extra || {}) });
    return true;
  } catch (e) {
    fail(name, e);
    return false;
  }
}

// Chromium with the fake camera and microphone (`extraArgs`, e.g. the fake audio file), a
// 1280×800 context with camera and microphone granted to `origins`, and a console collector.
export async function launch({ extraArgs = [], origins = [] } = {}) {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required', ...extraArgs],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  for (const origin of origins) {
    await context.grantPermissions(['camera', 'microphone'], { origin });
  }
  const logs = [];
  const watch = (page, name) => page.on('console', (m) => logs.push(`${name}: ${m.text()}`));
  return { browser, context, logs, watch };
}

// Signs `context` in as the owner: `POST /api/session` sets the HttpOnly session cookie, which
// the context's pages then send on their own requests (the console, the device page).
export async function signIn(context, base, token) {
  const r = await context.request.post(`${base}/api/session`, { data: { token } });
  if (r.status() !== 200) throw new Error(`sign-in: HTTP ${r.status()} ${await r.text()}`);
}

// What a voice panel shows, read from its data attributes and its lines.
export async function voiceState(page) {
  return page.getByTestId('voice').evaluate((el) => ({
    phase: el.dataset.phase,
    link: el.dataset.link,
    audio_bytes: Number(el.dataset.audioBytes),
    audio_ms: Number(el.dataset.audioMs),
    turns: Number(el.dataset.turns),
    terminated: Number(el.dataset.terminated),
    transcript: el.querySelector('[data-testid="voice-transcript"]')?.textContent || '',
    answer: el.querySelector('[data-testid="voice-answer"]')?.textContent || '',
    voice_error: el.querySelector('[data-testid="voice-error"]')?.textContent || '',
  }));
}
