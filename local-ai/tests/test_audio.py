"""WAV parsing and resampling, without a server."""

import random
import struct

import numpy as np
import pytest

from axon_local_ai.audio import STREAMED, WavError, decode_wav, encode_wav, resample, wav_header
from axon_local_ai.server import ApiError, _parse_multipart
from helpers import multipart, wav_bytes


def tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


@pytest.mark.parametrize("bits", [8, 16, 24])
def test_pcm_widths_decode_to_the_same_tone(bits):
    x = tone(440, 16_000)
    y, rate = decode_wav(wav_bytes(x, 16_000, bits=bits))
    assert rate == 16_000 and len(y) == len(x)
    assert np.max(np.abs(y - x)) < (0.02 if bits == 8 else 0.001)


def test_float_wav_decodes():
    x = tone(300, 22_050)
    y, rate = decode_wav(wav_bytes(x, 22_050, tag=3))
    assert rate == 22_050 and np.allclose(x, y)


def test_stereo_is_mixed_down_to_mono():
    left, right = tone(440, 16_000, amp=0.4), np.zeros(8000, np.float32)
    inter = np.stack([left, right], axis=1).reshape(-1)
    y, _ = decode_wav(wav_bytes(inter, 16_000, channels=2))
    assert len(y) == 8000
    assert np.max(np.abs(y - left / 2)) < 0.001


def test_streamed_lengths_read_to_the_end():
    pcm = struct.pack("<4h", 1000, -1000, 2000, -2000)
    y, rate = decode_wav(wav_header(16_000, None) + pcm)
    assert rate == 16_000 and len(y) == 4
    hdr = wav_header(16_000, None)
    assert struct.unpack_from("<I", hdr, 40)[0] == STREAMED


def test_encode_then_decode_round_trips():
    pcm = (np.arange(-100, 100, dtype="<i2") * 100).tobytes()
    y, rate = decode_wav(encode_wav(pcm, 22_050))
    assert rate == 22_050
    assert np.array_equal(np.round(y * 32768).astype(int), np.arange(-100, 100) * 100)


def test_not_a_wav_says_what_it_found():
    with pytest.raises(WavError, match=r"not a WAV file: it starts with b'ID3"):
        decode_wav(b"ID3\x04" + bytes(100))


def test_unsupported_format_names_the_tag():
    x = wav_bytes(tone(440, 8000), 8000)
    alaw = x[:20] + struct.pack("<H", 6) + x[22:]
    with pytest.raises(WavError, match="format tag 6"):
        decode_wav(alaw)


def test_hostile_bytes_raise_only_wav_errors():
    rng = random.Random(7)
    good = wav_bytes(tone(440, 8000, 0.05), 8000)
    for _ in range(2000):
        b = bytearray(good[: rng.randrange(len(good) + 1)])
        for _ in range(rng.randrange(4)):
            if b:
                b[rng.randrange(len(b))] = rng.randrange(256)
        try:
            y, rate = decode_wav(bytes(b))
        except WavError:
            continue
        assert y.dtype == np.float32 and np.all(np.abs(y) <= 1.0) and rate >= 1000


@pytest.mark.parametrize("src", [8_000, 22_050, 44_100, 48_000])
def test_resample_to_16k_keeps_length_and_pitch(src):
    y = resample(tone(440, src, seconds=1.0), src, 16_000)
    assert abs(len(y) - 16_000) <= 1
    assert abs(peak_hz(y, 16_000) - 440) < 3


def test_resample_down_filters_what_would_alias():
    # 10 kHz is above 16 kHz's Nyquist (8 kHz): without the low-pass it would fold down to 6 kHz
    # at full level and Whisper would hear it.
    y = resample(tone(10_000, 48_000, seconds=1.0), 48_000, 16_000)
    assert np.sqrt(np.mean(y**2)) < 0.05


def test_multipart_fields_come_back_byte_for_byte():
    rng = random.Random(3)
    data = bytes(rng.randrange(256) for _ in range(5000)) + b"\r\n--not-the-boundary\r\n\r\n\n\r"
    body, ctype = multipart({"model": "whisper-1", "language": "en"}, {"file": ("a b.wav", data)})
    fields = _parse_multipart(ctype, body)
    assert fields["file"] == (data, "a b.wav")
    assert fields["model"] == (b"whisper-1", None) and fields["language"][0] == b"en"


def test_multipart_without_a_boundary_is_refused():
    with pytest.raises(ApiError, match="no multipart boundary") as e:
        _parse_multipart("multipart/form-data", b"--x\r\n")
    assert e.value.status == 400
