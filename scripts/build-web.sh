#!/usr/bin/env bash
# Builds the web app into target/web-dist, which the worker serves as static assets
# (edge-worker/wrangler.toml [assets]): the console and virtual device (pkg/, feature "app")
# and the chat widget alone (pkg-widget/, for widget.js). No trunk: cargo, wasm-bindgen (the
# version in Cargo.lock, installed by setup.sh) and npm's wasm-opt (TOOLCHAIN.md §3).
# Prints the gzip sizes against their goals. Called by wrangler's [build] and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
out=target/web-dist
# Up to date: no source newer than the last build's stamp (wrangler runs this on every start).
if [ -f "$out/.stamp" ] && [ -z "$(find web shared/src Cargo.lock -newer "$out/.stamp" -print -quit)" ]; then
  exit 0
fi
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
wasm=target/wasm32-unknown-unknown/wasm-release/web.wasm
build() { # features, out dir, out name
  cargo rustc -q -p web --lib --crate-type cdylib --profile wasm-release \
    --target wasm32-unknown-unknown $1
  wasm-bindgen --target web --no-typescript --remove-name-section \
    --out-dir "$out.tmp/$2" --out-name "$3" "$wasm"
  node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$out.tmp/$2/$3_bg.wasm" -o "$out.tmp/$2/$3_bg.opt.wasm"
  mv "$out.tmp/$2/$3_bg.opt.wasm" "$out.tmp/$2/$3_bg.wasm"
}
build "--no-default-features" pkg-widget widget
build "" pkg web
cp web/static/* "$out.tmp/"
touch "$out.tmp/.stamp"
rm -rf "$out" && mv "$out.tmp" "$out"
gz() { gzip -9 -c "$1" | wc -c; }
app=$(( $(gz "$out/pkg/web_bg.wasm") + $(gz "$out/pkg/web.js") + $(gz "$out/index.html") + $(gz "$out/style.css") ))
widget=$(( $(gz "$out/pkg-widget/widget_bg.wasm") + $(gz "$out/pkg-widget/widget.js") + $(gz "$out/widget.js") + $(gz "$out/widget.css") ))
printf '[build-web] console + virtual device %d KB gz (goal 150), widget %d KB gz (goal 100), in %s\n' \
  $((app / 1024)) $((widget / 1024)) "$out" >&2
