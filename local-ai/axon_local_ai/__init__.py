"""Axon's optional local AI server: OpenAI-compatible speech (ASR and TTS) for offline voice.

Owns: the `python -m axon_local_ai` server that the Hub's `local` ASR and TTS providers call
(docs/voice.md §3): faster-whisper for `/v1/audio/transcriptions`, piper (or espeak-ng) for
`/v1/audio/speech`, on 127.0.0.1:8788 by default.
Never does: fetch anything at run time. Every model comes from a PyPI wheel installed by
scripts/setup-local-ai.sh; a missing one is reported, not downloaded.

    from axon_local_ai.server import App, make_server, serve
    server = make_server("127.0.0.1", 0, App(asr=None, tts=None))   # port 0: the OS picks
    serve(server, stop_event)                                      # until stop_event is set
"""

__version__ = "0.1.0"
