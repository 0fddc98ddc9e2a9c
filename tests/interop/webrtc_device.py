#!/usr/bin/env python3
"""A WebRTC device ("their device"), written from EMQX's multimedia signalling scheme as
docs/protocol.md §9 records it, with aiortc (PyPI) for WebRTC and paho-mqtt for MQTT. It shares
no code with Axon's media endpoint or its boards.

The device always offers. It subscribes $webrtc/{id} (answer, candidates, webrtc_terminated)
and $message/{id} (asr_response, tts_*, message), publishes its offer on
$webrtc/{id}/multimedia_proxy, sends the WAV (16-bit PCM) on its microphone track in real time
followed by silence, plays (records) the answer track, and hangs up once the answer's
tts_complete has come and the answer audio has stopped.

Stdout, one JSON object per line ("step" names it):
  offered, answered, connected, message (each side-channel message), first_audio, done
  (transcript, answer_ms, first_audio_ms: the last speech frame sent -> the first answer audio
  frame received), terminated (the endpoint ended the call: its reason; exit status 1).
"""
from __future__ import annotations

import argparse
import asyncio
import audioop
import fractions
import json
import time
import wave

import aioice.ice
import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

from mcp_mqtt import add_account_args, emit, log, new_client, parse_broker

RATE = 48000
FRAME = 960  # 20 ms

# The tests run on loopback only; aioice leaves 127.0.0.1 out of its host candidates.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def read_wav_48k(path: str) -> bytes:
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: 16-bit PCM only")
        pcm = w.readframes(w.getnframes())
        if w.getnchannels() == 2:
            pcm = audioop.tomono(pcm, 2, 0.5, 0.5)
        pcm, _ = audioop.ratecv(pcm, 2, 1, w.getframerate(), RATE, None)
        return pcm


class Microphone(MediaStreamTrack):
    """The WAV after a short lead-in, then silence, 20 ms a frame in real time."""

    kind = "audio"

    def __init__(self, pcm: bytes, lead_in_ms: int = 300) -> None:
        super().__init__()
        self.pcm = b"\0" * (RATE * lead_in_ms // 1000 * 2) + pcm
        self.pos = 0
        self.pts = 0
        self.start: float | None = None
        self.speech_end: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        wait = self.start + self.pts / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = self.pcm[self.pos:self.pos + FRAME * 2]
        self.pos += FRAME * 2
        if len(chunk) < FRAME * 2:
            if self.speech_end is None:
                self.speech_end = time.monotonic()
            chunk += b"\0" * (FRAME * 2 - len(chunk))
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(chunk)
        frame.sample_rate = RATE
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, RATE)
        self.pts += FRAME
        return frame


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    ap.add_argument("--device", required=True)
    ap.add_argument("--wav", required=True)
    ap.add_argument("--timeout", type=float, default=60.0)
    add_account_args(ap)
    a = ap.parse_args()

    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
    subscribed = asyncio.Event()
    client = new_client(a.username or a.device, a.username, a.password)
    to_device = [f"$webrtc/{a.device}", f"$message/{a.device}"]
    proxy = f"$webrtc/{a.device}/multimedia_proxy"

    def on_connect(c, _u, _f, reason, _p):
        if reason.is_failure:
            log(f"refused: {reason}")
            loop.call_soon_threadsafe(inbox.put_nowait, ("refused", {"reason": str(reason)}))
            return
        c.subscribe([(t, 1) for t in to_device])

    def on_subscribe(_c, _u, _mid, codes, _p):
        if any(code.is_failure for code in codes):
            loop.call_soon_threadsafe(inbox.put_nowait, ("refused", {"reason": str(codes)}))
        else:
            loop.call_soon_threadsafe(subscribed.set)

    def on_message(_c, _u, msg):
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        loop.call_soon_threadsafe(inbox.put_nowait, (msg.topic, body))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    host, port = parse_broker(a.broker)
    client.connect(host, port)
    client.loop_start()
    await asyncio.wait_for(subscribed.wait(), 10)

    pc = RTCPeerConnection()
    mic = Microphone(read_wav_48k(a.wav))
    pc.addTrack(mic)
    heard = {"samples": 0, "first": None, "last": time.monotonic()}
    # Set when the side channel says the utterance was heard: answer audio may follow from
    # then on, even while the microphone is still sending the WAV's tail on a busy machine.
    asr = {"heard": False}

    @pc.on("track")
    def on_track(track):
        async def play():
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if mic.speech_end is None and not asr["heard"]:
                    continue
                if heard["first"] is None:
                    heard["first"] = time.monotonic()
                    end = mic.speech_end if mic.speech_end is not None else heard["first"]
                    emit(step="first_audio", ms=round((heard["first"] - end) * 1000))
                heard["samples"] += frame.samples
                heard["last"] = time.monotonic()
        asyncio.ensure_future(play())

    @pc.on("connectionstatechange")
    async def on_state():
        if pc.connectionState == "connected":
            emit(step="connected")

    await pc.setLocalDescription(await pc.createOffer())
    client.publish(proxy, json.dumps({"type": "sdp_offer", "data": {"type": "offer", "sdp": pc.localDescription.sdp}}), qos=1)
    emit(step="offered")

    transcript = None
    complete: float | None = None
    status = 0
    deadline = time.monotonic() + a.timeout
    while True:
        # tts_complete can overtake the answer's first packet (the audio is paced, the marker
        # is not): done once the audio came and stopped, or 3 s after the marker without any.
        if complete and heard["first"] is not None and time.monotonic() - heard["last"] > 0.6:
            break
        if complete and heard["first"] is None and time.monotonic() - complete > 3:
            break
        if time.monotonic() > deadline:
            emit(step="timeout", transcript=transcript)
            status = 1
            break
        try:
            topic, body = await asyncio.wait_for(inbox.get(), 0.1)
        except asyncio.TimeoutError:
            continue
        kind = body.get("type") if isinstance(body, dict) else None
        if topic == "refused":
            emit(step="refused", **body)
            status = 1
            break
        if topic == to_device[0]:
            if kind == "sdp_answer":
                await pc.setRemoteDescription(RTCSessionDescription(sdp=body["data"]["sdp"], type="answer"))
                emit(step="answered")
            elif kind == "ice_candidate":
                line = body["data"].get("candidate", "")
                if line:
                    c = candidate_from_sdp(line.split(":", 1)[1])
                    c.sdpMid = body["data"].get("sdpMid")
                    c.sdpMLineIndex = body["data"].get("sdpMLineIndex")
                    await pc.addIceCandidate(c)
            elif kind == "webrtc_terminated":
                emit(step="terminated", reason=body.get("reason"))
                status = 1
                break
        elif topic == to_device[1]:
            emit(step="message", message=body)
            if kind == "asr_response":
                transcript = body.get("results")
                asr["heard"] = True
            # The answer's end: once the utterance was heard (or all of it sent). The Hub's
            # semantic endpoint can answer before the last speech frame has left a busy
            # machine, so the marker may come before the microphone is done.
            elif kind == "tts_complete" and (transcript is not None or mic.speech_end is not None):
                complete = complete or time.monotonic()

    if status == 0:
        emit(step="done", transcript=transcript, answer_ms=heard["samples"] * 1000 // RATE,
             first_audio_ms=None if heard["first"] is None or mic.speech_end is None
             else round((heard["first"] - mic.speech_end) * 1000))
    client.publish(proxy, json.dumps({"type": "webrtc_terminated", "reason": "hangup"}), qos=1).wait_for_publish(5)
    await pc.close()
    client.loop_stop()
    client.disconnect()
    return status


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
