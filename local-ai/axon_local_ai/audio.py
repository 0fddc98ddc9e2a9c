"""WAV bytes in and out, and resampling, for the server's two audio routes.

Owns: parsing a RIFF/WAVE upload (PCM 8/16/24/32-bit, IEEE float 32/64-bit, WAVE_FORMAT_EXTENSIBLE;
any rate; any channel count, mixed down to mono), writing s16le WAV headers (sized, or "streamed"
with unknown lengths), and resampling mono float audio.
Never does: I/O, or guessing at formats it cannot name: anything else is a `WavError` whose message
says what was found and what is accepted.
"""

from __future__ import annotations

import struct

import numpy as np

PCM, IEEE_FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
RATE_16K = 16_000  # what Whisper hears and what the Hub speaks
# The length written when the total is not known yet (a streamed WAV): readers that honour the
# RIFF sizes read to the end of the stream, like axon_core::media::audio::wav_decode does.
STREAMED = 0xFFFFFFFF


class WavError(ValueError):
    """The bytes are not a WAV this server can read; the message says why."""


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Returns (mono float32 samples in [-1, 1], sample rate)."""
    if len(data) < 12 or data[0:4] != b"RIFF" or data[8:12] != b"WAVE":
        head = data[:12]
        raise WavError(
            f"not a WAV file: it starts with {head!r}, not a RIFF/WAVE header "
            "(send PCM WAV; MP3, OGG and others are not decoded here)"
        )
    fmt = None
    pcm = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == b"data":
            # A streamed writer leaves the size at 0 or 0xFFFFFFFF: the data runs to the end.
            end = len(data) if size in (0, STREAMED) or body + size > len(data) else body + size
            pcm = data[body:end]
            break
        if cid == b"fmt ":
            fmt = data[body : body + size]
        pos = body + size + (size & 1)
    if fmt is None or len(fmt) < 16:
        raise WavError("the WAV has no 'fmt ' chunk before its data")
    if pcm is None:
        raise WavError("the WAV has no 'data' chunk")
    tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", fmt, 0)
    if tag == EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]
    if channels < 1 or rate < 1:
        raise WavError(f"the WAV says {channels} channels at {rate} Hz")
    if not 1_000 <= rate <= 384_000:
        raise WavError(f"sample rate {rate} Hz is outside 1,000..384,000 Hz")
    width = bits // 8
    if bits % 8 or width * channels != block:
        raise WavError(f"{bits}-bit samples in {channels} channels do not fit a {block}-byte block")
    usable = len(pcm) - len(pcm) % block
    raw = pcm[:usable]
    if tag == PCM and width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == PCM and width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif tag == PCM and width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif tag == PCM and width == 4:
        x = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
    elif tag == IEEE_FLOAT and width in (4, 8):
        x = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float32)
    else:
        raise WavError(
            f"WAV format tag {tag} with {bits}-bit samples is not supported "
            "(accepted: PCM 8/16/24/32-bit, IEEE float 32/64-bit)"
        )
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return np.clip(x, -1.0, 1.0).astype(np.float32), rate


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Mono float audio from `src` Hz to `dst` Hz.

    Linear interpolation, after a windowed-sinc low-pass at the new Nyquist when going down, so
    that a 44.1 or 48 kHz upload does not fold its top octave into the speech band Whisper hears.
    """
    if src == dst or len(x) == 0:
        return x.astype(np.float32)
    if dst < src:
        cutoff = dst / src / 2.0
        taps = 63
        n = np.arange(taps) - (taps - 1) / 2.0
        h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
        x = np.convolve(x, h / h.sum(), mode="same")
    n_out = int(round(len(x) * dst / src))
    t = np.arange(n_out) * (src / dst)
    return np.interp(t, np.arange(len(x)), x).astype(np.float32)


def float_to_s16le(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def wav_header(rate: int, data_len: int | None, channels: int = 1) -> bytes:
    """A 44-byte s16le WAV header; `data_len=None` writes the streamed (unknown) lengths."""
    block = 2 * channels
    riff = STREAMED if data_len is None else 36 + data_len
    data = STREAMED if data_len is None else data_len
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, PCM, channels, rate, rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data)
    )


def encode_wav(pcm: bytes, rate: int) -> bytes:
    return wav_header(rate, len(pcm)) + pcm
