"""The Python way of finding speech, shared by the performance references (a) and (b):
soundfile (libsndfile) decodes, soxr resamples to 16 kHz, py-webrtcvad (mode 3) scores 30 ms
frames, and py-webrtcvad's example.py collector (300 ms ring, 90 % trigger) makes segments."""

import io
import json
import os
import struct
import sys

import numpy as np
import soundfile
import soxr
import webrtcvad

sys.path.insert(0, os.path.dirname(__file__))
from webrtcvad_example import frame_generator, vad_collector  # noqa: E402

RATE = 16000


def decode(source):
    """A path or the bytes of a file, to 16-bit mono PCM at 16 kHz."""
    src = source if isinstance(source, str) else io.BytesIO(source)
    data, rate = soundfile.read(src, dtype="float32", always_2d=True)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE)
    return (np.clip(mono, -1.0, 1.0) * 32767.0).astype("<i2")


def segments(pcm, mode=3):
    vad = webrtcvad.Vad(mode)
    frames = frame_generator(30, pcm.tobytes(), RATE)
    return [(round(s, 3), round(e, 3)) for s, e in vad_collector(RATE, 30, 300, vad, frames, [])]


def segments_json(uri, pcm, segs):
    doc = {
        "source": uri,
        "duration": round(len(pcm) / RATE, 3),
        "sample_rate": RATE,
        "segments": [{"start": s, "end": e} for s, e in segs],
    }
    return json.dumps(doc, indent=2).encode()


def speech_wav(pcm, segs):
    """The speech only, concatenated, as a 16-bit mono WAV."""
    parts = [pcm[int(s * RATE) : int(e * RATE)] for s, e in segs]
    data = (np.concatenate(parts) if parts else np.zeros(0, dtype="<i2")).tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16
    ) + b"data" + struct.pack("<I", len(data))
    return header + data
