"""The reference: py-webrtcvad's well-known example.py segmentation, unchanged in substance.

30 ms frames, a 300 ms ring buffer, speech starts when more than 90 % of the ring is voiced and
ends when more than 90 % is unvoiced (wiseman/py-webrtcvad, example.py, `vad_collector`).

Usage: python webrtcvad_example.py --modes 0,1,2,3 FILE.wav [FILE.wav ...]
Prints one JSON object per file and mode:
  {"file": ..., "mode": m, "segments": [[start, end], ...], "decisions": [0, 1, ...]}
Input: 16-bit mono PCM WAV at 8, 16, 32 or 48 kHz, as example.py requires.
"""

import argparse
import collections
import contextlib
import json
import sys
import wave

import webrtcvad


def read_wave(path):
    with contextlib.closing(wave.open(path, "rb")) as wf:
        assert wf.getnchannels() == 1, f"{path}: not mono"
        assert wf.getsampwidth() == 2, f"{path}: not 16-bit"
        rate = wf.getframerate()
        assert rate in (8000, 16000, 32000, 48000), f"{path}: rate {rate}"
        return wf.readframes(wf.getnframes()), rate


class Frame:
    def __init__(self, data, timestamp, duration):
        self.bytes = data
        self.timestamp = timestamp
        self.duration = duration


def frame_generator(frame_duration_ms, audio, sample_rate):
    n = int(sample_rate * (frame_duration_ms / 1000.0) * 2)
    offset = 0
    timestamp = 0.0
    duration = (float(n) / sample_rate) / 2.0
    while offset + n < len(audio):
        yield Frame(audio[offset:offset + n], timestamp, duration)
        timestamp += duration
        offset += n


def vad_collector(sample_rate, frame_duration_ms, padding_duration_ms, vad, frames, decisions):
    """example.py's collector, yielding (start, end) in seconds instead of audio bytes."""
    num_padding_frames = int(padding_duration_ms / frame_duration_ms)
    ring_buffer = collections.deque(maxlen=num_padding_frames)
    triggered = False
    start = None
    last = None
    for frame in frames:
        is_speech = vad.is_speech(frame.bytes, sample_rate)
        decisions.append(1 if is_speech else 0)
        last = frame
        if not triggered:
            ring_buffer.append((frame, is_speech))
            num_voiced = len([f for f, speech in ring_buffer if speech])
            if num_voiced > 0.9 * ring_buffer.maxlen:
                triggered = True
                start = ring_buffer[0][0].timestamp
                ring_buffer.clear()
        else:
            ring_buffer.append((frame, is_speech))
            num_unvoiced = len([f for f, speech in ring_buffer if not speech])
            if num_unvoiced > 0.9 * ring_buffer.maxlen:
                triggered = False
                yield (start, frame.timestamp + frame.duration)
                ring_buffer.clear()
    if triggered and last is not None:
        yield (start, last.timestamp + last.duration)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default="0,1,2,3")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    modes = [int(m) for m in args.modes.split(",")]
    for path in args.files:
        audio, rate = read_wave(path)
        for mode in modes:
            vad = webrtcvad.Vad(mode)
            decisions = []
            frames = list(frame_generator(30, audio, rate))
            segments = [[round(s, 6), round(e, 6)] for s, e in vad_collector(rate, 30, 300, vad, frames, decisions)]
            json.dump({"file": path, "mode": mode, "segments": segments, "decisions": decisions}, sys.stdout)
            sys.stdout.write("\n")


if __name__ == "__main__":
    main()
