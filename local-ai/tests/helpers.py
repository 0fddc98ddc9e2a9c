"""HTTP and audio helpers for the tests: a multipart encoder, a chunked-response reader that keeps
the chunk boundaries (to prove streaming), and speech rendered by espeak-ng."""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import urllib.error
import urllib.request
import uuid

import numpy as np


def request(url: str, body: bytes | None = None, headers: dict | None = None, method: str | None = None):
    """(status, headers, body), for error statuses too."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def post_json(url: str, obj) -> tuple[int, dict, bytes]:
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return request(url, body, {"Content-Type": "application/json"})


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = b""
    for k, v in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    for k, (name, data) in files.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
                "Content-Type: audio/wav\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def transcribe(base: str, wav: bytes | None, **fields) -> tuple[int, dict, bytes]:
    fields = {"model": "whisper-1", **{k: str(v) for k, v in fields.items()}}
    body, ctype = multipart(fields, {"file": ("speech.wav", wav)} if wav is not None else {})
    return request(f"{base}/v1/audio/transcriptions", body, {"Content-Type": ctype})


def words(text: str) -> str:
    """Lower case, punctuation gone, single spaces: what a spoken-words comparison needs."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def espeak_wav(text: str) -> bytes:
    """Speech from espeak-ng: a 22,050 Hz mono 16-bit WAV."""
    return subprocess.run(["espeak-ng", "--stdout", "-v", "en-us"], input=text.encode(),
                          capture_output=True, check=True).stdout


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1, tag: int = 1, bits: int = 16) -> bytes:
    """A WAV from float samples (interleaved when channels > 1)."""
    if tag == 3:
        data = samples.astype("<f4").tobytes()
        bits = 32
    elif bits == 16:
        data = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    elif bits == 8:
        data = (np.clip(samples, -1, 1) * 127 + 128).astype(np.uint8).tobytes()
    elif bits == 24:
        v = (np.clip(samples, -1, 1) * (2**23 - 1)).astype("<i4")
        data = b"".join(int(x).to_bytes(4, "little", signed=True)[:3] for x in v)
    else:
        raise ValueError(bits)
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)


def read_pcm16(wav: bytes) -> tuple[np.ndarray, int]:
    """Samples and rate of a 16-bit mono WAV as the server writes it (44-byte header)."""
    assert wav[:4] == b"RIFF" and wav[8:16] == b"WAVEfmt ", wav[:16]
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", wav, 20)
    assert (tag, channels, bits) == (1, 1, 16), (tag, channels, bits)
    assert wav[36:40] == b"data"
    return np.frombuffer(wav[44:], dtype="<i2"), rate


def post_chunked(port: int, path: str, obj) -> tuple[int, dict, list[bytes]]:
    """POST JSON over a raw socket and return the response's chunks as they were framed."""
    body = json.dumps(obj).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        f = s.makefile("rb")
        status = int(f.readline().split()[1])
        headers = {}
        while (line := f.readline().strip()):
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        assert headers.get("transfer-encoding") == "chunked", headers
        chunks = []
        while True:
            size = int(f.readline().strip(), 16)
            if size == 0:
                f.readline()
                return status, headers, chunks
            chunks.append(f.read(size))
            assert f.read(2) == b"\r\n"
