"""The references of the real-audio evaluation (`vadflow-eval real`), each with its own defaults.

- py-webrtcvad's example.py (webrtcvad_example.py beside this file), modes 0 to 3, on the audio
  at 16 kHz, 16-bit, as example.py requires;
- silero-vad from PyPI: `load_silero_vad(onnx=True)` (onnxruntime) and its own
  `get_speech_timestamps`, defaults, 16 kHz;
- TEN VAD from PyPI (`ten-vad`), when it is installed: its frame probabilities (hop 256, 16 ms),
  averaged in pairs to one per 512 samples, segmented by silero-vad's own post-processing
  (`get_speech_timestamps_from_probs`, defaults: threshold 0.5, hysteresis 0.15, 250 ms minimum
  speech, 100 ms minimum silence, 30 ms padding).

Every file is read with soundfile, averaged to mono and resampled to 16 kHz with soxr (HQ).
Usage: python realaudio.py LABELS_DIR > references.json
Prints {"systems": {name: {file: [[start, end], ...]}}, "versions": {...}}.
"""

import json
import os
import sys
import warnings

import numpy as np
import soundfile
import soxr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webrtcvad  # noqa: E402
import webrtcvad_example  # noqa: E402

RATE = 16000


def load(path):
    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE, quality="HQ")
    return mono.astype(np.float32)


def example_py(audio, mode):
    pcm = (np.clip(audio, -1.0, 1.0 - 1.0 / 32768) * 32768.0).astype("<i2").tobytes()
    frames = list(webrtcvad_example.frame_generator(30, pcm, RATE))
    vad = webrtcvad.Vad(mode)
    return [[s, e] for s, e in webrtcvad_example.vad_collector(RATE, 30, 300, vad, frames, [])]


def main():
    warnings.filterwarnings("ignore")
    labels_dir = sys.argv[1]
    with open(os.path.join(labels_dir, "labels.json")) as f:
        labels = json.load(f)["files"]
    systems = {f"example.py mode {m}": {} for m in range(4)}
    versions = {"webrtcvad-wheels": "2.0.14"}
    silero = None
    try:
        import torch
        from silero_vad import get_speech_timestamps, load_silero_vad
        from silero_vad.utils_vad import get_speech_timestamps_from_probs

        torch.set_num_threads(1)
        silero = load_silero_vad(onnx=True)
        systems["silero-vad (onnxruntime, get_speech_timestamps)"] = {}
        import importlib.metadata as md

        versions["silero-vad"] = md.version("silero-vad")
        versions["torch"] = md.version("torch")
    except ImportError as e:
        print(f"realaudio: silero-vad not available ({e})", file=sys.stderr)
    ten = None
    try:
        from ten_vad import TenVad

        ten = TenVad
        systems["TEN VAD + silero-vad post-processing"] = {}
        import importlib.metadata as md

        versions["ten-vad"] = md.version("ten-vad")
    except (ImportError, OSError) as e:
        print(f"realaudio: TEN VAD not available ({e})", file=sys.stderr)
    for name in sorted(labels):
        audio = load(os.path.join(labels_dir, name))
        for m in range(4):
            systems[f"example.py mode {m}"][name] = example_py(audio, m)
        if silero is not None:
            ts = get_speech_timestamps(torch.from_numpy(audio), silero, sampling_rate=RATE, return_seconds=False)
            systems["silero-vad (onnxruntime, get_speech_timestamps)"][name] = [
                [t["start"] / RATE, t["end"] / RATE] for t in ts
            ]
        if ten is not None and silero is not None:
            hop = 256
            vad = ten(hop, 0.5)
            pcm = (np.clip(audio, -1.0, 1.0 - 1.0 / 32768) * 32768.0).astype(np.int16)
            probs = [vad.process(pcm[i : i + hop])[0] for i in range(0, len(pcm) - hop + 1, hop)]
            # silero-vad's post-processing takes one probability per 512 samples: the mean of
            # the two TEN frames of each such window.
            pairs = [(probs[i] + probs[min(i + 1, len(probs) - 1)]) / 2 for i in range(0, len(probs), 2)]
            ts = get_speech_timestamps_from_probs(
                pairs, sampling_rate=RATE, return_seconds=False, audio_length_samples=len(audio)
            )
            systems["TEN VAD + silero-vad post-processing"][name] = [
                [t["start"] / RATE, t["end"] / RATE] for t in ts
            ]
    json.dump({"systems": systems, "versions": versions}, sys.stdout)


if __name__ == "__main__":
    main()
