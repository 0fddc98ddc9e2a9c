"""The short encoder window (asr.py): the same words as Whisper's full 30 s window, faster, and the
full window again when the short one fails. In-process, against the real tiny.en model."""

from __future__ import annotations

import time

import numpy as np
import pytest

from axon_local_ai import asr as asr_module
from axon_local_ai.asr import (FULL_WINDOW_FRAMES, SHORT_WINDOW_MIN_FRAMES, Asr, default_model_dir,
                               echoes_prompt, is_silence, looks_repeated, window_frames)
from axon_local_ai.audio import RATE_16K, decode_wav, resample
from helpers import espeak_wav, words

COMMANDS = [
    "turn on the kitchen lamp",
    "switch on the living room light",
    "set the bedroom thermostat to 21",
    "what is the temperature in the hall",
    "turn off all the lights",
    "what do you see",
]
PROMPT = ("Kitchen lamp, living room light, bedroom thermostat, hall sensor, front door lock. "
          "Turn on the kitchen lamp. Set the bedroom thermostat to 21.")


def speech(text: str) -> np.ndarray:
    samples, rate = decode_wav(espeak_wav(text))
    return resample(samples, rate, RATE_16K)


@pytest.fixture(scope="module")
def models():
    return (Asr(default_model_dir(), 2, "auto"), Asr(default_model_dir(), 2, "full"))


def test_window_covers_the_clip_and_its_tail():
    assert window_frames(2 * RATE_16K, "auto") == SHORT_WINDOW_MIN_FRAMES
    assert window_frames(10 * RATE_16K, "auto") == 1400
    # A clip whose tail would not fit, and mode "full", get Whisper's own 30 s.
    assert window_frames(27 * RATE_16K, "auto") == FULL_WINDOW_FRAMES
    assert window_frames(2 * RATE_16K, "full") == FULL_WINDOW_FRAMES
    assert window_frames(1, "auto") == SHORT_WINDOW_MIN_FRAMES


def test_repetition_is_recognised():
    assert looks_repeated("Turn on the lamp. Turn on the lamp.")
    assert looks_repeated("What do you see? what do you see? What do")
    assert not looks_repeated("Turn on the lamp. Turn off the fan.")
    assert not looks_repeated("Turn on the lamp")
    assert not looks_repeated("")


def test_unknown_window_mode_is_refused():
    with pytest.raises(ValueError, match="window 'short'"):
        Asr(default_model_dir(), 1, "short")


def test_short_window_hears_the_same_words_faster(models):
    short, full = models
    spent = {"auto": 0.0, "full": 0.0}
    for command in COMMANDS:
        audio = speech(command)
        for asr in (short, full):
            asr.transcribe(audio, "en", PROMPT)  # warm, and the timing below is the second run
            started = time.monotonic()
            result = asr.transcribe(audio, "en", PROMPT)
            spent[asr.window] += time.monotonic() - started
            assert words(result.text) == words(command), (asr.window, result.text)
            assert result.window_s == (12 if asr.window == "auto" else 30)
    # Not a timing goal (bench-voice measures), a check that the short path is the short one:
    # the encoder's work falls with the square of the window, 30 s vs 12 s.
    assert spent["auto"] < spent["full"], spent


def test_an_echo_of_the_prompt_is_recognised():
    assert echoes_prompt("Set the bedroom thermostat to 21.", PROMPT)
    assert echoes_prompt("kitchen lamp", PROMPT)
    assert not echoes_prompt("Set the kitchen lamp to 21.", PROMPT)
    assert not echoes_prompt("", PROMPT)
    assert not echoes_prompt("Turn on the kitchen lamp.", None)
    # Likely silence that repeats the prompt is silence; sure speech is speech, even in the prompt.
    assert is_silence(0.96, -0.85, "Set the bedroom thermostat to 21.", PROMPT)
    assert not is_silence(0.02, -0.06, "Set the bedroom thermostat to 21.", PROMPT)
    assert not is_silence(0.96, -0.85, "Open the garage.", PROMPT)
    assert is_silence(0.96, -1.5, "Open the garage.", PROMPT)


@pytest.mark.parametrize("kind", ["zeros", "faint noise"])
@pytest.mark.parametrize("window", ["auto", "full"])
def test_silence_is_empty_not_a_command_from_the_prompt(models, kind, window):
    # tiny.en hears "you" in a short window of silence, and with the prompt, the full window
    # hears "Set the bedroom thermostat to 21." (measured): neither may reach the agent.
    asr = models[0] if window == "auto" else models[1]
    audio = np.zeros(2 * RATE_16K, np.float32)
    if kind == "faint noise":
        audio = (np.random.default_rng(1).standard_normal(2 * RATE_16K) * 0.003).astype(np.float32)
    result = asr.transcribe(audio, "en", PROMPT)
    assert result.text == "" and result.segments == [], result


def test_a_repeating_short_window_falls_back_to_the_full_one(models, monkeypatch):
    # A 5 s window makes tiny.en repeat this command to the token limit (measured); the
    # transcript must still be right, from the full window.
    monkeypatch.setattr(asr_module, "SHORT_WINDOW_MIN_FRAMES", 500)
    monkeypatch.setattr(asr_module, "SHORT_WINDOW_TAIL_FRAMES", 100)
    audio = speech("turn on the kitchen lamp")
    assert window_frames(len(audio), "auto") == 500
    result = models[0].transcribe(audio, "en", PROMPT)
    assert words(result.text) == words("turn on the kitchen lamp"), result.text
    assert result.window_s == 30, "the repeated short-window result was used"
