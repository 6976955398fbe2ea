//! Silero VAD's weights, embedded in the binary and laid out once, at first use, for the forward
//! pass in [`super`].
//!
//! `models/silero-vad/weights.bin` holds the tensors of silero-vad 6.2.3's
//! `silero_vad_16k_sequence.onnx` as little-endian `f32`, in the order of [`TENSORS`] and in
//! ONNX's layouts; `models/silero-vad/extract.sh` re-extracts it from the PyPI wheel and checks
//! its sha256. The STFT basis of the ONNX model (a periodic Hann window times the DFT, checked by
//! the extraction) is not stored: a real FFT computes the same thing.

use super::{CONV1_IN, HIDDEN, PANEL};
use std::sync::LazyLock;

/// The weights file, embedded.
const BYTES: &[u8] = include_bytes!("../../../../models/silero-vad/weights.bin");

/// Name and shape of each tensor in the file, in order.
pub const TENSORS: [(&str, &[usize]); 13] = [
    ("encoder.0.weight", &[128, 129, 3]),
    ("encoder.0.bias", &[128]),
    ("encoder.1.weight", &[64, 128, 3]),
    ("encoder.1.bias", &[64]),
    ("encoder.2.weight", &[64, 64, 3]),
    ("encoder.2.bias", &[64]),
    ("encoder.3.weight", &[128, 64, 3]),
    ("encoder.3.bias", &[128]),
    ("lstm.w", &[4 * HIDDEN, 128]),
    ("lstm.r", &[4 * HIDDEN, HIDDEN]),
    ("lstm.b", &[8 * HIDDEN]),
    ("output.weight", &[HIDDEN]),
    ("output.bias", &[1]),
];

/// Number of parameters in the file.
pub const PARAMETERS: usize = 243_585;

const _: () = assert!(
    BYTES.len() == PARAMETERS * 4,
    "weights.bin has the wrong size"
);

/// The weights in the layouts the forward pass uses.
#[derive(Debug)]
pub struct Weights {
    /// Convolutions as `[out, tap * in + channel]` matrices (taps outermost), with their biases.
    /// `conv3` keeps taps 1 and 2 and `conv4` only tap 1: the other taps only ever see the zero
    /// padding, because their inputs are 2 and 1 steps long.
    pub conv: [Conv; 4],
    /// LSTM input weights `[4 * HIDDEN, 128]`, gates reordered to i, f, g, o.
    pub lstm_w: Vec<f32>,
    /// LSTM recurrent weights R `[4 * HIDDEN, HIDDEN]`, gates reordered to i, f, g, o, in
    /// panels of [`super::PANEL`] rows: panel `p` holds, for each `k`, the `PANEL` values
    /// `R[p * PANEL + i][k]` together, so that `R · h` streams through memory once with the
    /// panel's sums in registers.
    pub lstm_r_panels: Vec<f32>,
    /// The same, row-major (`[4 * HIDDEN, HIDDEN]`), for its 8-bit form.
    pub lstm_r: Vec<f32>,
    /// Input and recurrent biases summed, gates reordered to i, f, g, o.
    pub lstm_b: Vec<f32>,
    pub out_w: Vec<f32>,
    pub out_b: f32,
}

/// One convolution as a matrix.
#[derive(Debug)]
pub struct Conv {
    /// `[out, taps.len() * in]`.
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub out: usize,
    pub k: usize,
}

/// The embedded weights, laid out on first use.
pub static WEIGHTS: LazyLock<Weights> = LazyLock::new(|| Weights::from_le_bytes(BYTES));

/// ONNX stores LSTM gates as i, o, f, c; the forward pass uses i, f, g (= c), o.
const GATE_FROM_ONNX: [usize; 4] = [0, 2, 3, 1];

impl Weights {
    fn from_le_bytes(bytes: &[u8]) -> Weights {
        let all: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let mut tensors = Vec::with_capacity(TENSORS.len());
        let mut at = 0;
        for (_, shape) in TENSORS {
            let n: usize = shape.iter().product();
            tensors.push(&all[at..at + n]);
            at += n;
        }
        assert_eq!(at, PARAMETERS, "tensor table and file size agree");
        let conv = |i: usize, inputs: usize, taps: &[usize]| {
            let (w, b) = (tensors[2 * i], tensors[2 * i + 1]);
            let out = b.len();
            let k = taps.len() * inputs;
            let mut m = vec![0.0; out * k];
            for o in 0..out {
                for (t, &tap) in taps.iter().enumerate() {
                    for c in 0..inputs {
                        m[o * k + t * inputs + c] = w[(o * inputs + c) * 3 + tap];
                    }
                }
            }
            Conv {
                w: m,
                b: b.to_vec(),
                out,
                k,
            }
        };
        let reorder_rows = |src: &[f32], cols: usize| -> Vec<f32> {
            let mut dst = vec![0.0; src.len()];
            for (gate, &from) in GATE_FROM_ONNX.iter().enumerate() {
                let rows = HIDDEN * cols;
                dst[gate * rows..(gate + 1) * rows]
                    .copy_from_slice(&src[from * rows..(from + 1) * rows]);
            }
            dst
        };
        let lstm_w = reorder_rows(tensors[8], 128);
        let r = reorder_rows(tensors[9], HIDDEN);
        let mut lstm_r_panels = vec![0.0; r.len()];
        for row in 0..4 * HIDDEN {
            let (panel, i) = (row / PANEL, row % PANEL);
            for k in 0..HIDDEN {
                lstm_r_panels[(panel * HIDDEN + k) * PANEL + i] = r[row * HIDDEN + k];
            }
        }
        let b = tensors[10];
        let summed: Vec<f32> = (0..4 * HIDDEN).map(|i| b[i] + b[4 * HIDDEN + i]).collect();
        Weights {
            conv: [
                conv(0, CONV1_IN, &[0, 1, 2]),
                conv(1, 128, &[0, 1, 2]),
                conv(2, 64, &[1, 2]),
                conv(3, 64, &[1]),
            ],
            lstm_w,
            lstm_r_panels,
            lstm_r: r,
            lstm_b: reorder_rows(&summed, 1),
            out_w: tensors[11].to_vec(),
            out_b: tensors[12][0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_the_file() {
        let total: usize = TENSORS
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(total, PARAMETERS);
        let w = &*WEIGHTS;
        assert_eq!(w.conv[0].k, 3 * 129);
        assert_eq!(w.conv[2].k, 2 * 64);
        assert_eq!(w.conv[3].k, 64);
        assert!(w.lstm_r_panels.iter().all(|x| x.is_finite()));
        // Real weights, not zeros.
        assert!(w.conv[0].w.iter().filter(|x| **x != 0.0).count() > 40_000);
    }
}
