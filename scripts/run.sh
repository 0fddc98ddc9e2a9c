#!/usr/bin/env bash
# Runs the whole Axon system locally: installs what is missing, starts Mosquitto
# (TCP 127.0.0.1:1883, WebSocket 127.0.0.1:8083) and a simulated demo home of 12 devices.
# Ctrl-C stops everything; devices leave gracefully (their presence is cleared).
#
#   scripts/run.sh                 # demo home
#   AXON_PROFILE=lamp AXON_DEVICES=50 scripts/run.sh
#
# The edge worker (wrangler dev) and the web app join this script when they land.
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

cat >&2 <<MSG

  Axon is running.
    broker      mqtt://127.0.0.1:1883   ws://127.0.0.1:8083/mqtt
    devices     target/release/axon-device-sim ctl --broker mqtt://127.0.0.1:1883 list
    call a tool target/release/axon-device-sim ctl --broker mqtt://127.0.0.1:1883 call kitchen-lamp set_power --args '{"on":true}'
  Ctrl-C to stop.

MSG
wait
