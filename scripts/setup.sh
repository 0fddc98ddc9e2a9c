#!/usr/bin/env bash
# Installs what Axon needs on a fresh Debian 12 machine. Idempotent: every step checks first,
# so a second run takes a second or two. Used by scripts/run.sh, scripts/test.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
# Each install says how long it took: the README's first-run table comes from these lines.
step_started=$SECONDS
step() { say "$*"; step_started=$SECONDS; }
done_in() { say "  done in $((SECONDS - step_started)) s"; }

# 1. Debian packages: the broker (tests start their own; scripts/run.sh starts the dev one),
#    the browser for the web app's end-to-end tests (driven by npm's playwright-core), and
#    libopus (found by pkg-config) for the media endpoint's Opus codec.
missing=()
for p in mosquitto mosquitto-clients chromium chromium-driver libopus-dev pkg-config; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  step "installing ${missing[*]} (apt)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  done_in
fi

# 2. Rust: the wasm target for the worker and the web app (both build against axon-core).
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
  done_in
fi

# 3. Python for the independent MCP-over-MQTT peers used in the interop tests (tests/interop)
#    and the official MCP SDK (PyPI `mcp`) as an outside client of the worker's /mcp.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import paho.mqtt' 2>/dev/null; then
  step "installing paho-mqtt 2.2.0"
  .venv/bin/pip install -q --disable-pip-version-check paho-mqtt==2.2.0
  done_in
fi
if [ "$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("aiortc"))' 2>/dev/null)" != "1.16.0" ]; then
  # The independent WebRTC device of the media tests (tests/interop/webrtc_device.py).
  step "installing aiortc 1.16.0"
  .venv/bin/pip install -q --disable-pip-version-check aiortc==1.16.0
  done_in
fi
if [ "$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null)" != "2.3.0" ]; then
  step "installing the MCP Python SDK 2.3.0"
  .venv/bin/pip install -q --disable-pip-version-check mcp==2.3.0
  done_in
fi

# 4. The edge worker's toolchain: wasm-bindgen-cli at exactly the version in
#    Cargo.lock, worker-build, and the pinned npm tools (wrangler with its own Node 22, binaryen, esbuild).
#    Every tool comes from a registry; nothing downloads a binary from elsewhere.
export PATH="$HOME/.cargo/bin:$PATH"
wb_version=$(cargo pkgid wasm-bindgen 2>/dev/null | sed 's/.*@//')
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wb_version" ]; then
  step "installing wasm-bindgen-cli $wb_version (cargo install, about 3 minutes on 2 cores)"
  cargo install -q wasm-bindgen-cli --version "$wb_version" --force
  done_in
fi
if ! worker-build --version 2>/dev/null | grep -q "0\.8\.7"; then
  # --debug: worker-build only drives cargo, wasm-bindgen, wasm-opt and esbuild and rewrites a few
  # small files, so an unoptimised build of it serves as well (the worker it built here was
  # byte-identical) and installs in 3 min 27 s instead of 8 min 17 s on 2 busy cores (README).
  # No registry ships a ready-built worker-build 0.8.7 or wasm-bindgen-cli 0.2.130 (npm, PyPI).
  step "installing worker-build 0.8.7 (cargo install --debug, about 3 minutes on 2 cores)"
  cargo install -q worker-build --version 0.8.7 --locked --debug --force
  done_in
fi
if [ ! -x node_modules/.bin/wrangler ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "installing npm tools (wrangler, node 22, binaryen, esbuild)"
  npm install --no-audit --no-fund --loglevel=error
  done_in
fi

say "ok: mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}'), $(rustc --version), python $(.venv/bin/python -c 'import platform;print(platform.python_version())')"
