"""Reference Silero VAD probabilities, from PyPI onnxruntime on the sequence model.

Usage: python reference.py MODEL.onnx AUDIO... > probs.json   (onnxruntime, numpy, soundfile)

For each 16 kHz mono file, the per-frame speech probabilities of every whole 512-sample frame,
computed as silero-vad's own SileroVADSequence does (frames in blocks, each after the last 64
samples of the previous frame, zeros before the first; state carried between blocks). A last
partial frame is left out: vadflow does not score it.
"""

import json
import os
import sys

import numpy as np
import onnxruntime as ort
import soundfile

FRAME, CONTEXT, BLOCK = 512, 64, 512


def probabilities(session, audio):
    frames = audio[: audio.size // FRAME * FRAME].reshape(-1, FRAME)
    h = np.zeros((1, 1, 128), dtype=np.float32)
    c = np.zeros((1, 1, 128), dtype=np.float32)
    context = np.zeros(CONTEXT, dtype=np.float32)
    out = []
    for first in range(0, len(frames), BLOCK):
        block = frames[first : first + BLOCK]
        contexts = np.vstack([context[None, :], block[:-1, -CONTEXT:]])
        context = block[-1, -CONTEXT:].copy()
        probs, h, c = session.run(
            ["speech_probs", "hn", "cn"],
            {"input": np.hstack([contexts, block]).astype(np.float32), "h": h, "c": c},
        )
        out.extend(float(p) for p in probs)
    return out


def main(model, paths):
    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    result = {}
    for path in paths:
        audio, rate = soundfile.read(path, dtype="float32")
        assert rate == 16000 and audio.ndim == 1, f"{path}: need 16 kHz mono"
        result[os.path.basename(path)] = probabilities(session, audio)
    json.dump({"onnxruntime": ort.__version__, "files": result}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
