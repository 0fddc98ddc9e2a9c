// The virtual device page's voice over WebRTC in headless Chromium (playwright-core, Debian's
// chromium): the tab calls the media endpoint (axon-media) with its signalling on its own MQTT
// session, its microphone track out and the answer's track in. The Rust side
// (tests/tests/webrtc_browser.rs) started the broker, the demo home, the local AI server, the
// worker and the endpoint, and checks the devices and the endpoint's calls. One JSON line per
// step.
//
// usage: node webrtc.mjs WORKER_URL BROKER_WS_URL OUT_DIR MIC_WAV MIC_MS OWNER_TOKEN FIRST_WAV SECOND_WAV RESTART_FILE
// MIC_WAV is Chromium's fake microphone (the first step); FIRST_WAV and SECOND_WAV are spoken,
// on cue, into the later pages' microphones (a barge-in needs the second utterance to start
// while the answer to the first plays). Creating RESTART_FILE asks the Rust side to restart the
// endpoint; it deletes the file once the new one is ready.
import fs from 'node:fs';
import { launch, step, fail, sleep, signIn, voiceState } from './harness.mjs';

const [base, brokerWs, outDir, micWav, micMs, token, firstWav, secondWav, restartFile] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const { browser, context, logs, watch } = await launch({
  extraArgs: [`--use-file-for-fake-audio-capture=${micWav}%noloop`],
  origins: [base],
});

async function waitFor(page, what, ok, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await voiceState(page);
    if (ok(last)) return last;
    await sleep(50);
  }
  throw new Error(`${what} not within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

// Opens the device page as `id` (paired by the signed-in owner) and waits until it is online.
// Every WebSocket the page opens is noted: a call must not use the Hub's /api/voice.
async function devicePage(id, name) {
  const page = await context.newPage(); watch(page, name);
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.goto(`${base}/device?id=${id}&room=office&broker=${encodeURIComponent(brokerWs)}`);
  await page.getByTestId('status').filter({ hasText: /^online$/ }).waitFor({ timeout: 20000 });
  return { page, sockets };
}

// A device page whose microphone is a stream the test speaks into on cue (`say`).
async function speakingPage(id, name) {
  const page = await context.newPage(); watch(page, name);
  await page.addInitScript(() => {
    const ctx = new AudioContext({ sampleRate: 48000 });
    const dest = ctx.createMediaStreamDestination();
    navigator.mediaDevices.getUserMedia = async () => { await ctx.resume(); return dest.stream; };
    window.__say = async (b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const buf = await ctx.decodeAudioData(bytes.buffer);
      const src = ctx.createBufferSource();
      src.buffer = buf; src.connect(dest); src.start();
      return Math.round(buf.duration * 1000);
    };
  });
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.goto(`${base}/device?id=${id}&room=office&broker=${encodeURIComponent(brokerWs)}`);
  await page.getByTestId('status').filter({ hasText: /^online$/ }).waitFor({ timeout: 20000 });
  return { page, sockets };
}

const say = (page, file) => page.evaluate((b64) => window.__say(b64), fs.readFileSync(file).toString('base64'));

try {
  await signIn(context, base, token);

  await step('webrtc_voice_on_the_device_page', async () => {
    const { page, sockets } = await devicePage('tab-call', 'call');
    const transport = await page.getByTestId('voice-transport').inputValue();
    await page.getByTestId('voice-toggle').click();
    const connected = await waitFor(page, 'a connected call', (s) => s.link === 'WebRTC: connected', 10000);
    const state = await waitFor(page, 'an answered turn',
      (s) => s.turns >= 1 && s.audio_bytes > 0 && s.phase === 'listening', 45000 + Number(micMs));
    await page.screenshot({ path: `${outDir}/device-webrtc.png` });
    await page.getByTestId('voice-toggle').click();
    await page.getByTestId('voice').and(page.locator('[data-phase="off"]')).waitFor({ timeout: 5000 });
    await page.close();
    return { ...state, transport, connected_phase: connected.phase, voice_sockets: sockets.filter((u) => u.includes('/api/voice')) };
  });

  await step('barge_in_over_webrtc', async () => {
    const { page, sockets } = await speakingPage('tab-barge', 'barge');
    await page.getByTestId('voice-toggle').click();
    await waitFor(page, 'a connected call', (s) => s.link === 'WebRTC: connected', 10000);
    await say(page, firstWav);
    const speaking = await waitFor(page, 'the first answer playing', (s) => s.phase === 'speaking', 45000);
    const t0 = Date.now();
    await say(page, secondWav);
    const cut = await waitFor(page, 'the answer cut off', (s) => s.terminated >= 1, 5000);
    const cutMs = Date.now() - t0;
    // The second utterance is heard and answered in the same call.
    const after = await waitFor(page, 'the second turn answered',
      (s) => s.turns >= 1 && s.transcript !== speaking.transcript && s.phase === 'listening', 45000);
    await page.getByTestId('voice-toggle').click();
    await page.getByTestId('voice').and(page.locator('[data-phase="off"]')).waitFor({ timeout: 5000 });
    await page.close();
    return {
      ...after, first_transcript: speaking.transcript, speech_to_terminate_ms: cutMs,
      link_at_cut: cut.link, voice_sockets: sockets.filter((u) => u.includes('/api/voice')),
    };
  });

  await step('the_call_is_made_again_after_the_endpoint_restarts', async () => {
    const { page, sockets } = await speakingPage('tab-redial', 'redial');
    await page.getByTestId('voice-toggle').click();
    await waitFor(page, 'a connected call', (s) => s.link === 'WebRTC: connected', 10000);
    fs.writeFileSync(restartFile, 'restart');
    const dropped = await waitFor(page, 'the drop shown', (s) => s.link.includes('calling again'), 20000);
    const t0 = Date.now();
    await waitFor(page, 'the call made again', (s) => s.link === 'WebRTC: connected', 40000);
    const againMs = Date.now() - t0;
    for (let i = 0; i < 200 && fs.existsSync(restartFile); i++) await sleep(50);
    // The new call carries speech both ways.
    await say(page, firstWav);
    const after = await waitFor(page, 'a turn on the new call',
      (s) => s.turns >= 1 && s.audio_bytes > 0 && s.phase === 'listening', 45000);
    await page.getByTestId('voice-toggle').click();
    await page.getByTestId('voice').and(page.locator('[data-phase="off"]')).waitFor({ timeout: 5000 });
    await page.close();
    return { ...after, link_dropped: dropped.link, phase_dropped: dropped.phase, reconnect_ms: againMs,
      voice_sockets: sockets.filter((u) => u.includes('/api/voice')) };
  });
} catch (e) {
  fail('unexpected', e);
} finally {
  fs.writeFileSync(`${outDir}/browser-webrtc.log`, logs.join('\n'));
  await browser.close();
}
