//! **vad** with Silero VAD (16 kHz, v6), a small neural network, in pure Rust.
//!
//! The forward pass of `silero_vad_16k_sequence.onnx`, per frame of 512 new samples (32 ms):
//! 1. the frame, after the last 64 samples of the previous frame (its context; zeros at first),
//!    reflected by 64 samples on the right: 640 samples;
//! 2. an STFT of 4 windows (256 samples, hop 128, periodic Hann), magnitudes: `[129 × 4]`;
//! 3. four 1-D convolutions with ReLU: 129→128 (stride 1), →64 (stride 2), →64 (stride 2),
//!    →128 (stride 1), all kernel 3 with padding 1: `[128 × 1]`;
//! 4. an LSTM cell of 128 units whose state (h, c) carries from frame to frame;
//! 5. ReLU, a 1×1 convolution and a sigmoid: the speech probability.
//!
//! Frames are processed in blocks ([`BLOCK`]): everything but the LSTM recurrence is a matrix
//! product over the whole block. The state (h, c and the context samples) lives in [`Silero`],
//! so memory is flat in the audio's length, and one frame at a time gives the same result as a
//! block ([`Silero::score`] is the path for live input).

mod int8;
mod lstm;
mod math;
mod simd;
pub mod weights;

use int8::{QCols, QMatrix, QVec};
use lstm::lstm_step;
use math::{Layout, gemm_acc};
use realfft::RealToComplex;
use realfft::num_complex::Complex;
use std::sync::{Arc, LazyLock};
use weights::{WEIGHTS, Weights};

/// The model's sample rate.
pub const RATE: u32 = 16_000;
/// New samples per frame (32 ms).
pub const FRAME: usize = 512;
/// Samples of the previous frame seen again with each frame.
const CONTEXT: usize = 64;
/// STFT window length and hop.
const WINDOW: usize = 256;
const HOP: usize = 128;
/// STFT windows per frame and frequency bins per window.
const STEPS: usize = 4;
const CONV1_IN: usize = WINDOW / 2 + 1;
/// LSTM units.
const HIDDEN: usize = 128;
/// Frames per block in block mode.
pub const BLOCK: usize = 128;
/// Rows of the recurrent weights summed together in registers.
const PANEL: usize = 32;

/// Slots per frame in the spectrogram and first-convolution buffers: the steps plus zero padding
/// on each side (the spectrogram needs both sides, conv 2 only the left one).
const SPEC_SLOTS: usize = STEPS + 2;
const Y1_SLOTS: usize = STEPS + 1;

/// A Silero VAD stream: one per file, fed consecutive frames.
pub struct Silero {
    w: &'static Weights,
    h: [f32; HIDDEN],
    c: [f32; HIDDEN],
    context: [f32; CONTEXT],
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    fft_in: Vec<f32>,
    fft_out: Vec<Complex<f32>>,
    fft_scratch: Vec<Complex<f32>>,
    padded: Vec<f32>,
    /// Per block: `[frame][slot][bin]` magnitudes, slots 0 and 5 zero.
    spec: Vec<f32>,
    /// `[frame][slot][128]`, slot 0 zero.
    y1: Vec<f32>,
    /// `[frame][2][64]`.
    y2: Vec<f32>,
    /// `[frame][64]`.
    y3: Vec<f32>,
    /// `[frame][128]`.
    y4: Vec<f32>,
    /// `[frame][4 × 128]`: the LSTM gates' input part.
    gates: Vec<f32>,
    /// The matrix products in 8 bits ([`Silero::quantised`]), with the buffers of quantised
    /// inputs.
    quant: Option<Quant>,
}

/// The 8-bit weights and the buffers of quantised inputs.
#[derive(Debug)]
pub(super) struct Quant {
    w: &'static QWeights,
    cols: QCols,
    h: QVec,
}

/// The encoder's five weight matrices (the four convolutions and the LSTM's input weights) and
/// the LSTM's recurrent weights, quantised to 8 bits on first use.
#[derive(Debug)]
struct QWeights {
    layers: [QMatrix; 5],
    recurrent: QMatrix,
}

static QWEIGHTS: LazyLock<QWeights> = LazyLock::new(|| {
    let w = &*WEIGHTS;
    let conv = |c: &weights::Conv| QMatrix::new(&c.w, c.out, c.k);
    QWeights {
        layers: [
            conv(&w.conv[0]),
            conv(&w.conv[1]),
            conv(&w.conv[2]),
            conv(&w.conv[3]),
            QMatrix::new(&w.lstm_w, 4 * HIDDEN, 128),
        ],
        recurrent: QMatrix::new(&w.lstm_r, 4 * HIDDEN, HIDDEN),
    }
});

/// `c += layer · b`: in `f32`, or in 8 bits when `quant` is given. Layers 0–3 are the
/// convolutions, 4 the LSTM's input weights.
#[inline(always)]
fn product(
    w: &Weights,
    quant: Option<&mut Quant>,
    layer: usize,
    b: &[f32],
    lb: Layout,
    c: &mut [f32],
    lc: Layout,
) {
    if let Some(q) = quant {
        q.cols.quantise(b, lb);
        return int8::gemm_acc(&q.w.layers[layer], &q.cols, c, lc);
    }
    let (a, la) = match w.conv.get(layer) {
        Some(conv) => (&conv.w, Layout::rows(conv.out, conv.k)),
        None => (&w.lstm_w, Layout::rows(4 * HIDDEN, 128)),
    };
    gemm_acc(a, la, b, lb, c, lc);
}

impl std::fmt::Debug for Silero {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Silero").finish_non_exhaustive()
    }
}

impl Default for Silero {
    fn default() -> Self {
        Silero::new()
    }
}

impl Silero {
    /// A fresh stream (zero state). The weights are shared by every stream of the process.
    pub fn new() -> Silero {
        let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(WINDOW);
        let fft_out = fft.make_output_vec();
        let fft_scratch = fft.make_scratch_vec();
        let window = (0..WINDOW)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / WINDOW as f64).cos()) as f32
            })
            .collect();
        Silero {
            w: &WEIGHTS,
            h: [0.0; HIDDEN],
            c: [0.0; HIDDEN],
            context: [0.0; CONTEXT],
            fft,
            window,
            fft_in: vec![0.0; WINDOW],
            fft_out,
            fft_scratch,
            padded: vec![0.0; CONTEXT + FRAME + CONTEXT],
            spec: vec![0.0; BLOCK * SPEC_SLOTS * CONV1_IN],
            y1: vec![0.0; BLOCK * Y1_SLOTS * 128],
            y2: vec![0.0; BLOCK * 2 * 64],
            y3: vec![0.0; BLOCK * 64],
            y4: vec![0.0; BLOCK * 128],
            gates: vec![0.0; BLOCK * 4 * HIDDEN],
            quant: None,
        }
    }

    /// Whether [`Silero::quantised`] computes in 8 bits on this CPU.
    pub fn quantised_here() -> bool {
        int8::fast()
    }

    /// A fresh stream that, where the CPU has AVX-512 VNNI ([`int8::fast`]), computes its
    /// matrix products (the encoder's and the LSTM's recurrent one) in 8 bits, weights per row
    /// and inputs per frame ([`int8`]): about twice as fast, and no longer bit-for-bit the
    /// reference model, so only the `auto` engine uses it (its figures were measured both
    /// ways, docs/quality.md); elsewhere, and for the `silero` engine, `f32`.
    pub fn quantised() -> Silero {
        Silero {
            quant: int8::fast().then(|| Quant {
                w: &QWEIGHTS,
                cols: QCols::default(),
                h: QVec::default(),
            }),
            ..Silero::new()
        }
    }

    /// Back to the initial state, for a new stream.
    pub fn reset(&mut self) {
        self.h = [0.0; HIDDEN];
        self.c = [0.0; HIDDEN];
        self.context = [0.0; CONTEXT];
    }

    /// The speech probability of the next frame of exactly [`FRAME`] samples (the one-frame
    /// path, for live input).
    pub fn score(&mut self, frame: &[f32]) -> f32 {
        let mut out = [0.0];
        self.forward(frame, &mut out);
        out[0]
    }

    /// The speech probabilities of consecutive frames: `samples` holds whole frames, one
    /// probability per frame is appended to `probs`.
    pub fn score_frames(&mut self, samples: &[f32], probs: &mut Vec<f32>) {
        for block in samples.chunks(BLOCK * FRAME) {
            let n = block.len() / FRAME;
            let at = probs.len();
            probs.resize(at + n, 0.0);
            self.forward(&block[..n * FRAME], &mut probs[at..]);
        }
    }

    /// Runs up to [`BLOCK`] frames: with AVX2 and FMA where the CPU has them (checked once),
    /// else with the baseline instructions the binary is built for. The matrix products and the
    /// FFT choose their own instructions at run time.
    // Unsafe, as are the entries of the 8-bit kernels (`int8::vnni`), only to call code built
    // for instructions the baseline target lacks, after the CPU was found to have them.
    #[allow(unsafe_code)]
    fn forward(&mut self, samples: &[f32], probs: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if simd::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time just above).
            return unsafe { self.forward_avx2_fma(samples, probs) };
        }
        self.forward_with::<false>(samples, probs);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn forward_avx2_fma(&mut self, samples: &[f32], probs: &mut [f32]) {
        self.forward_with::<true>(samples, probs);
    }

    /// The forward pass; `FMA`: fused multiply-adds in the recurrence (only where the CPU has
    /// them: without, `mul_add` is a slow library call).
    #[inline(always)]
    fn forward_with<const FMA: bool>(&mut self, samples: &[f32], probs: &mut [f32]) {
        let n = probs.len();
        assert!(
            n <= BLOCK && samples.len() == n * FRAME,
            "whole frames, one block"
        );
        for (f, frame) in samples.chunks_exact(FRAME).enumerate() {
            self.spectrogram(f, frame);
        }
        self.encoder(n);
        let (w, gates) = (self.w, &mut self.gates);
        for (g, p) in gates.chunks_exact_mut(4 * HIDDEN).zip(probs.iter_mut()) {
            *p = lstm_step::<FMA>(w, self.quant.as_mut(), g, &mut self.h, &mut self.c);
        }
    }

    /// Step 2 for frame `f` of the block; also moves the context on.
    #[inline(always)]
    fn spectrogram(&mut self, f: usize, frame: &[f32]) {
        let p = &mut self.padded;
        p[..CONTEXT].copy_from_slice(&self.context);
        p[CONTEXT..CONTEXT + FRAME].copy_from_slice(frame);
        let last = CONTEXT + FRAME - 1;
        for k in 0..CONTEXT {
            p[last + 1 + k] = p[last - 1 - k];
        }
        self.context.copy_from_slice(&frame[FRAME - CONTEXT..]);
        let base = f * SPEC_SLOTS * CONV1_IN;
        for step in 0..STEPS {
            let win = &p[step * HOP..step * HOP + WINDOW];
            for ((x, &s), &w) in self.fft_in.iter_mut().zip(win).zip(&self.window) {
                *x = s * w;
            }
            self.fft
                .process_with_scratch(&mut self.fft_in, &mut self.fft_out, &mut self.fft_scratch)
                .expect("FFT buffers have the planned sizes");
            let at = base + (step + 1) * CONV1_IN;
            for (m, z) in self.spec[at..at + CONV1_IN].iter_mut().zip(&self.fft_out) {
                *m = (z.re * z.re + z.im * z.im).sqrt();
            }
        }
    }

    /// Step 3 for `n` frames, then the LSTM gates' input part.
    #[inline(always)]
    fn encoder(&mut self, n: usize) {
        let w = self.w;
        let [c1, c2, c3, c4] = &w.conv;
        // conv 1, one product per output step: the input of step t is slots t..t+3.
        for slots in self.y1.chunks_exact_mut(Y1_SLOTS * 128).take(n) {
            slots[..128].fill(0.0);
            for t in 0..STEPS {
                slots[(t + 1) * 128..(t + 2) * 128].copy_from_slice(&c1.b);
            }
        }
        for t in 0..STEPS {
            product(
                w,
                self.quant.as_mut(),
                0,
                &self.spec[t * CONV1_IN..],
                Layout::cols(c1.k, n, SPEC_SLOTS * CONV1_IN),
                &mut self.y1[(t + 1) * 128..],
                Layout::cols(128, n, Y1_SLOTS * 128),
            );
        }
        relu(&mut self.y1[..n * Y1_SLOTS * 128]);
        // conv 2, stride 2: output step t reads slots 2t..2t+3.
        fill_bias(&mut self.y2[..n * 128], &c2.b);
        for t in 0..2 {
            product(
                w,
                self.quant.as_mut(),
                1,
                &self.y1[2 * t * 128..],
                Layout::cols(c2.k, n, Y1_SLOTS * 128),
                &mut self.y2[t * 64..],
                Layout::cols(64, n, 2 * 64),
            );
        }
        relu(&mut self.y2[..n * 128]);
        // conv 3 (taps 1 and 2: both steps of conv 2) and conv 4 (its centre tap).
        fill_bias(&mut self.y3[..n * 64], &c3.b);
        product(
            w,
            self.quant.as_mut(),
            2,
            &self.y2,
            Layout::cols(c3.k, n, c3.k),
            &mut self.y3,
            Layout::cols(64, n, 64),
        );
        relu(&mut self.y3[..n * 64]);
        fill_bias(&mut self.y4[..n * 128], &c4.b);
        product(
            w,
            self.quant.as_mut(),
            3,
            &self.y3,
            Layout::cols(c4.k, n, c4.k),
            &mut self.y4,
            Layout::cols(128, n, 128),
        );
        relu(&mut self.y4[..n * 128]);
        fill_bias(&mut self.gates[..n * 4 * HIDDEN], &w.lstm_b);
        product(
            w,
            self.quant.as_mut(),
            4,
            &self.y4,
            Layout::cols(128, n, 128),
            &mut self.gates,
            Layout::cols(4 * HIDDEN, n, 4 * HIDDEN),
        );
    }
}

/// ReLU; also turns NaN (from a corrupt float file) into 0, so it never reaches the LSTM state.
#[inline(always)]
fn relu(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// Fills consecutive vectors with the bias.
#[inline(always)]
fn fill_bias(x: &mut [f32], bias: &[f32]) {
    for chunk in x.chunks_exact_mut(bias.len()) {
        chunk.copy_from_slice(bias);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n).map(|_| (rng.f32() - 0.5) * 0.2).collect()
    }

    #[test]
    fn one_frame_at_a_time_equals_blocks() {
        let audio = noise(FRAME * 150, 1);
        let mut blocks = Silero::new();
        let mut by_block = Vec::new();
        blocks.score_frames(&audio, &mut by_block);
        let mut single = Silero::new();
        let by_frame: Vec<f32> = audio.chunks_exact(FRAME).map(|f| single.score(f)).collect();
        assert_eq!(by_block.len(), 150);
        for (i, (a, b)) in by_block.iter().zip(&by_frame).enumerate() {
            assert!((a - b).abs() < 1e-6, "frame {i}: {a} vs {b}");
            assert!((0.0..=1.0).contains(a));
        }
    }

    #[test]
    fn state_carries_and_reset_clears_it() {
        let audio = noise(FRAME * 3, 2);
        let mut s = Silero::new();
        let first = s.score(&audio[..FRAME]);
        let again = s.score(&audio[..FRAME]);
        assert_ne!(first, again, "the state changes the result");
        s.reset();
        assert_eq!(s.score(&audio[..FRAME]), first);
    }

    #[test]
    fn silence_is_not_speech() {
        let mut s = Silero::new();
        let mut p = Vec::new();
        s.score_frames(&vec![0.0; FRAME * 20], &mut p);
        assert!(p.iter().all(|&x| x < 0.1), "{p:?}");
    }
}
