"""Fixtures for the local AI server's tests: real servers on free loopback ports, real models.

Each server is a child process started with `python -m axon_local_ai`, polled on /healthz until
it answers (bounded), and stopped with SIGTERM at the end (a test checks it exits in time).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # local-ai/
# The package is on .venv-ai's path through a .pth file (scripts/setup-local-ai.sh); this makes the
# tests run against this checkout's code with any interpreter that has the requirements.
sys.path.insert(0, str(PACKAGE_DIR))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args: str, ready_within: float = 120.0):
        self.port = free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="axon-local-ai-", suffix=".log")[1])
        env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR), HF_HUB_OFFLINE="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "axon_local_ai", "--host", "127.0.0.1", "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "wb"),
            env=env,
        )
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not answer /healthz within {ready_within} s:\n{self.log()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, within: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


@pytest.fixture(scope="session")
def server():
    """The full server: Whisper tiny.en and the piper voice."""
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def bare_server():
    """No models at all: every model route must answer 503."""
    s = Server("--asr", "none", "--tts", "none")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def espeak_server():
    """The fallback voice, without Whisper (quick to start)."""
    s = Server("--asr", "none", "--tts", "espeak")
    yield s
    s.stop()


def pytest_terminal_summary(terminalreporter):
    # scripts/test.sh sums plain "N passed, M failed" lines across every runner it calls.
    stats = terminalreporter.stats
    passed = len(stats.get("passed", []))
    failed = len(stats.get("failed", [])) + len(stats.get("error", []))
    terminalreporter.write_line(f"{passed} passed, {failed} failed")
