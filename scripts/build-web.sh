#!/usr/bin/env bash
# Builds the web app into target/web-dist, which the worker serves as static assets
# (edge-worker/wrangler.toml [assets]): one build per page, so each downloads only its own
# code: the console (pkg-console/), the virtual device (pkg-device/) and the chat widget
# (pkg-widget/, for widget.js), each with its page: index.html (the console; the worker's fallback
# for any path), device.html (served at /device) and widget.js. No trunk: cargo, wasm-bindgen (the
# version in Cargo.lock, installed by setup.sh), npm's wasm-opt (docs/toolchain.md §2) and npm's
# esbuild, which minifies wasm-bindgen's JS glue (8.5 -> 6.4 KB gzip for the widget).
# Prints the gzip sizes against their goals. Called by wrangler's [build] and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
out=target/web-dist
# Up to date: no source newer than the last build's stamp (wrangler runs this on every start).
if [ -f "$out/.stamp" ] && [ -z "$(find web shared/src Cargo.lock scripts/build-web.sh -newer "$out/.stamp" -print -quit)" ]; then
  exit 0
fi
# A directory of its own: two builds at once (two wrangler dev, or wrangler and scripts/test.sh)
# must not delete each other's files half way; the last to finish puts its own in place.
tmp=$(mktemp -d "$out.tmp.XXXXXX") && chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
build() { # features, out dir, out name, target dir
  cargo rustc -q -p web --lib --crate-type cdylib --profile wasm-release \
    --target wasm32-unknown-unknown --target-dir "$4" $1
  local wasm="$4/wasm32-unknown-unknown/wasm-release/web.wasm"
  wasm-bindgen --target web --no-typescript --remove-name-section \
    --out-dir "$tmp/$2" --out-name "$3" "$wasm"
  # --low-memory-unused: rustc puts the stack first, below 1 MiB, so the low 1 KB is touched only
  # by a stack about to overflow anyway; knowing that lets wasm-opt fold address arithmetic into
  # loads and stores (-0.8 KB gzip for the device page). The producers and target-features
  # sections are for toolchains, not browsers.
  node_modules/.bin/wasm-opt -Oz --converge --low-memory-unused --strip-producers --strip-target-features \
    --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$tmp/$2/$3_bg.wasm" -o "$tmp/$2/$3_bg.opt.wasm"
  mv "$tmp/$2/$3_bg.opt.wasm" "$tmp/$2/$3_bg.wasm"
  node_modules/.bin/esbuild --minify --log-level=warning "$tmp/$2/$3.js" --outfile="$tmp/$2/$3.min.js"
  mv "$tmp/$2/$3.min.js" "$tmp/$2/$3.js"
}
build "--no-default-features" pkg-widget widget target
build "--no-default-features --features device" pkg-device device target
# The console is built with Leptos's type-erased views (`--cfg erase_components`): its many
# generated forms and plots otherwise each get their own copy of the render code. Measured
# 166 -> 142 KB gzip for its wasm; the widget and the device page grow with it (88 -> 96, 207 ->
# 209), so they keep the typed views. A cfg is a RUSTFLAGS change, which rebuilds every crate,
# hence the console's own target dir.
RUSTFLAGS="--cfg erase_components" build "--no-default-features --features console" pkg-console console target/web-erased
cp web/static/* "$tmp/"
# Each page's stylesheet from the parts it shows (web/style/), minified: the device page does not
# download the console's rules, nor the console the face's. The widget's loader is minified too.
css() { # out name, parts...
  local name=$1; shift
  (cd web/style && cat "$@") | node_modules/.bin/esbuild --minify --loader=css --log-level=warning > "$tmp/$name"
}
css style.css base.css console.css
css device.css base.css device.css voice.css
for f in widget.css widget.js; do
  node_modules/.bin/esbuild --minify --log-level=warning "web/static/$f" --outfile="$tmp/$f" --allow-overwrite
done
touch "$tmp/.stamp"
# Another build can put its own in place between the rm and the mv; its files are as new as
# ours (the same sources), so keep them.
rm -rf "$out"
mv -T "$tmp" "$out" 2>/dev/null || [ -f "$out/.stamp" ]
gz() { gzip -9 -c "$1" | wc -c; }
page() { echo $(( $(gz "$out/pkg-$1/$1_bg.wasm") + $(gz "$out/pkg-$1/$1.js") + $(gz "$out/$2") + $(gz "$out/$3") )); }
kb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }
printf '[build-web] gzip: console %s KB, virtual device %s KB (goal 150 each), widget %s KB (goal 100), in %s\n' \
  "$(kb "$(page console index.html style.css)")" "$(kb "$(page device device.html device.css)")" \
  "$(kb "$(page widget widget.js widget.css)")" "$out" >&2
