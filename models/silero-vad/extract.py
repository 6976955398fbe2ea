"""Extracts Silero VAD's weights from the ONNX sequence model into weights.bin.

Usage: python extract.py MODEL.onnx OUT.bin   (needs the PyPI packages onnx and numpy)

weights.bin is the model's tensors as little-endian float32, one after the other, in the order
and shapes of TENSORS below, in ONNX's own layouts (conv weights [out, in, kernel], LSTM gates in
ONNX's i, o, f, c order). The STFT basis is not stored: this script checks that it is a periodic
Hann window times the DFT, which vadflow computes with a real FFT instead.
"""

import sys

import numpy as np
import onnx
from onnx import numpy_helper

# (name in weights.bin, name in the ONNX graph or None for the LSTM inputs, shape)
TENSORS = [
    ("encoder.0.weight", "encoder.0.weight", (128, 129, 3)),
    ("encoder.0.bias", "encoder.0.bias", (128,)),
    ("encoder.1.weight", "encoder.1.weight", (64, 128, 3)),
    ("encoder.1.bias", "encoder.1.bias", (64,)),
    ("encoder.2.weight", "encoder.2.weight", (64, 64, 3)),
    ("encoder.2.bias", "encoder.2.bias", (64,)),
    ("encoder.3.weight", "encoder.3.weight", (128, 64, 3)),
    ("encoder.3.bias", "encoder.3.bias", (128,)),
    ("lstm.w", None, (512, 128)),
    ("lstm.r", None, (512, 128)),
    ("lstm.b", None, (1024,)),
    ("output.weight", "output.weight", (128,)),
    ("output.bias", "output.bias", (1,)),
]


def main(model_path, out_path):
    model = onnx.load(model_path)
    graph = model.graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    lstm = [n for n in graph.node if n.op_type == "LSTM"]
    assert len(lstm) == 1, "expected one LSTM node"
    w_name, r_name, b_name = lstm[0].input[1:4]
    hidden = [a.i for a in lstm[0].attribute if a.name == "hidden_size"]
    assert hidden == [128], hidden
    lstm_names = {"lstm.w": w_name, "lstm.r": r_name, "lstm.b": b_name}

    basis = init["stft.forward_basis_buffer"][:, 0, :].astype(np.float64)
    n = np.arange(256)
    k = np.arange(129)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / 256)
    assert np.abs(basis[:129] - window * np.cos(2 * np.pi * k * n / 256)).max() < 1e-6
    assert np.abs(basis[129:] + window * np.sin(2 * np.pi * k * n / 256)).max() < 1e-6

    total = 0
    with open(out_path, "wb") as out:
        for name, onnx_name, shape in TENSORS:
            a = init[onnx_name or lstm_names[name]]
            a = a.reshape(shape) if a.size == int(np.prod(shape)) else a
            assert a.shape == shape and a.dtype == np.float32, (name, a.shape, a.dtype)
            out.write(a.astype("<f4").tobytes(order="C"))
            total += a.size
    used = {o or lstm_names[n] for n, o, _ in TENSORS} | {"stft.forward_basis_buffer"}
    assert used == set(init), f"unexpected tensors: {set(init) - used}"
    print(f"extract: {total} parameters written to {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
