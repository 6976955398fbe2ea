"""Reference kernels, one thread, for bench/kernels.sh; prints JSON figures on stdout.

- webrtcvad: py-webrtcvad's raw per-frame loop (30 ms frames, mode 3) over 16 kHz PCM;
- silero_onnxruntime: Silero VAD with PyPI onnxruntime (one thread) on the sequence model,
  in blocks of 512 frames, as silero-vad's own SileroVADSequence does;
- decode NAME: soundfile (libsndfile) decode, downmix and soxr resampling to 16 kHz, per file,
  as the seed design does; for what libsndfile does not read (MP4/AAC, ADTS, Matroska/WebM),
  ffmpeg's own decoder and resampler on one thread, read into this process.

Usage: python kernels.py --audio 1h.wav --model silero.onnx --formats DIR [--runs N]
"""

import argparse
import json
import os
import statistics
import subprocess
import time
import wave

import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "models", "silero-vad"))
from reference import probabilities  # noqa: E402 (silero-vad's block loop, one definition)


def median_s(runs, fn):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def webrtcvad_loop(pcm, rate):
    import webrtcvad

    vad = webrtcvad.Vad(3)
    n = rate * 30 // 1000 * 2
    speech = 0
    for i in range(0, len(pcm) - n + 1, n):
        speech += vad.is_speech(pcm[i : i + n], rate)
    return speech


def decode(path):
    """soundfile (libsndfile) + soxr where libsndfile reads the format, else ffmpeg itself."""
    import soundfile
    import soxr

    try:
        x, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except soundfile.LibsndfileError:
        return decode_ffmpeg(path)
    return soxr.resample(x.mean(axis=1), rate, 16000)


def decode_ffmpeg(path):
    """ffmpeg's decoder and resampler, one thread, mono float at 16 kHz into this process."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-i", path,
         "-map", "0:a:0", "-ac", "1", "-ar", "16000", "-f", "f32le", "-"],
        check=True, capture_output=True).stdout
    return np.frombuffer(out, dtype="<f4")


def decoder_name(path):
    import soundfile

    try:
        soundfile.info(path)
        return "soundfile + soxr"
    except soundfile.LibsndfileError:
        return "ffmpeg 1 thread"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--audio", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--formats")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    with wave.open(a.audio, "rb") as w:
        rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
    audio_s = len(pcm) / 2 / rate
    out = {
        "webrtcvad": {
            "name": "py-webrtcvad raw loop",
            "audio_s": audio_s,
            "median_s": median_s(a.runs, lambda: webrtcvad_loop(pcm, rate)),
        }
    }
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(a.model, sess_options=opts, providers=["CPUExecutionProvider"])
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    out["silero_onnxruntime"] = {
        "name": f"onnxruntime {ort.__version__}",
        "audio_s": audio_s,
        "median_s": median_s(a.runs, lambda: probabilities(session, audio)),
    }
    if a.formats:
        for name in sorted(os.listdir(a.formats)):
            path = os.path.join(a.formats, name)
            n = len(decode(path))
            out[f"decode {name}"] = {
                "name": decoder_name(path),
                "audio_s": n / 16000,
                "median_s": median_s(a.runs, lambda: decode(path)),
            }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
