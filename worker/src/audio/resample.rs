//! **resample**: mono `f32` from the source rate to the VAD rate, band-limited, streaming.
//!
//! Rates with a small rational ratio (44.1 k, 48 k, 22.05 k, 8 k … to 16 k) use rubato's
//! synchronous FFT resampler; unusual rates use its asynchronous windowed-sinc resampler. The
//! resampler's delay is removed and the tail flushed, so output sample `n` is the input at time
//! `n / to`: timing is preserved exactly and the output has `round(len × to / from)` samples.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Indexing, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};
use vadflow_common::{Failure, Reason};

/// Input frames per resampler call.
const CHUNK: usize = 2048;
/// Largest reduced input ratio handled by the FFT resampler; beyond it, sinc interpolation.
const MAX_FFT_RATIO_TERM: usize = 2048;

/// A streaming mono resampler; a pass-through when the rates are equal.
pub struct Resampler {
    inner: Option<Box<dyn rubato::Resampler<f32> + Send>>,
    from: u32,
    to: u32,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    delay_left: usize,
    total_in: u64,
    total_out: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure::new(Reason::Internal, format!("resampler: {e}"))
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Result<Resampler, Failure> {
        let mut r = Resampler {
            inner: None,
            from,
            to,
            pending: Vec::with_capacity(CHUNK * 2),
            scratch: Vec::new(),
            delay_left: 0,
            total_in: 0,
            total_out: 0,
        };
        if from == to {
            return Ok(r);
        }
        let (f, t) = (from as usize, to as usize);
        let inner: Box<dyn rubato::Resampler<f32> + Send> = if f / gcd(f, t) <= MAX_FFT_RATIO_TERM {
            Box::new(Fft::<f32>::new(f, t, CHUNK, 1, FixedSync::Input).map_err(internal)?)
        } else {
            let params = SincInterpolationParameters {
                sinc_len: 128,
                f_cutoff: None,
                oversampling_factor: 256,
                interpolation: SincInterpolationType::Cubic,
                window: WindowFunction::BlackmanHarris2,
            };
            Box::new(
                Async::<f32>::new_sinc(
                    t as f64 / f as f64,
                    1.0,
                    &params,
                    CHUNK,
                    1,
                    FixedAsync::Input,
                )
                .map_err(internal)?,
            )
        };
        r.delay_left = inner.output_delay();
        r.scratch = vec![0.0; inner.output_frames_max()];
        r.inner = Some(inner);
        Ok(r)
    }

    /// Resamples `input`, appending whatever output is ready to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), Failure> {
        self.total_in += input.len() as u64;
        let Some(inner) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            self.total_out += input.len() as u64;
            return Ok(());
        };
        self.pending.extend_from_slice(input);
        let mut consumed = 0;
        loop {
            let need = inner.input_frames_next();
            if self.pending.len() - consumed < need {
                break;
            }
            let chunk = &self.pending[consumed..consumed + need];
            let (n_in, n_out) = run(inner.as_mut(), chunk, &mut self.scratch, None)?;
            consumed += n_in;
            emit(
                &self.scratch[..n_out],
                &mut self.delay_left,
                &mut self.total_out,
                out,
            );
        }
        self.pending.drain(..consumed);
        Ok(())
    }

    /// Flushes the tail: afterwards exactly `round(total_in × to / from)` samples were emitted.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), Failure> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let expected =
            (self.total_in as f64 * f64::from(self.to) / f64::from(self.from)).round() as u64;
        let mut first = true;
        while self.total_out < expected {
            let need = inner.input_frames_next();
            let valid = if first {
                self.pending.len().min(need)
            } else {
                0
            };
            first = false;
            let mut chunk = std::mem::take(&mut self.pending);
            chunk.resize(need, 0.0);
            let indexing = Indexing::new().partial_len(valid);
            let (_, n_out) = run(inner.as_mut(), &chunk, &mut self.scratch, Some(&indexing))?;
            let room = (expected - self.total_out) as usize;
            let mut delay = self.delay_left;
            let skip = delay.min(n_out);
            delay -= skip;
            let usable = &self.scratch[skip..n_out];
            let take = usable.len().min(room);
            out.extend_from_slice(&usable[..take]);
            self.total_out += take as u64;
            self.delay_left = delay;
            if n_out == 0 {
                return Err(internal("flush produced no output"));
            }
        }
        Ok(())
    }
}

fn run(
    inner: &mut dyn rubato::Resampler<f32>,
    chunk: &[f32],
    scratch: &mut [f32],
    indexing: Option<&Indexing>,
) -> Result<(usize, usize), Failure> {
    let frames_out = scratch.len();
    let input = InterleavedSlice::new(chunk, 1, chunk.len()).map_err(internal)?;
    let mut output = InterleavedSlice::new_mut(scratch, 1, frames_out).map_err(internal)?;
    inner
        .process_into_buffer(&input, &mut output, indexing)
        .map_err(internal)
}

fn emit(samples: &[f32], delay_left: &mut usize, total_out: &mut u64, out: &mut Vec<f32>) {
    let skip = (*delay_left).min(samples.len());
    *delay_left -= skip;
    out.extend_from_slice(&samples[skip..]);
    *total_out += (samples.len() - skip) as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    fn resample_all(from: u32, to: u32, input: &[f32], piece: usize) -> Vec<f32> {
        let mut r = Resampler::new(from, to).expect("resampler");
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            r.process(chunk, &mut out).expect("process");
        }
        r.finish(&mut out).expect("finish");
        out
    }

    #[test]
    fn output_length_is_exact_for_common_and_odd_rates() {
        for (from, to) in [
            (44_100, 16_000),
            (48_000, 16_000),
            (8_000, 16_000),
            (22_050, 16_000),
            (44_101, 16_000),
            (16_000, 16_000),
        ] {
            let input = tone(from, 440.0, 1.37);
            let out = resample_all(from, to, &input, 777);
            let expected = (input.len() as f64 * to as f64 / from as f64).round() as usize;
            assert_eq!(out.len(), expected, "{from}->{to}");
        }
    }

    #[test]
    fn timing_is_preserved() {
        // An impulse at 0.5 s must come out at 0.5 s.
        for from in [44_100u32, 48_000, 8_000, 44_101] {
            let mut input = vec![0.0f32; from as usize];
            input[from as usize / 2] = 1.0;
            let out = resample_all(from, 16_000, &input, 1000);
            let peak = out
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .map(|(i, _)| i)
                .expect("non-empty");
            assert!((peak as i64 - 8_000).abs() <= 1, "{from}: peak at {peak}");
        }
    }

    #[test]
    fn removes_content_above_the_new_nyquist() {
        // 6 kHz passes to 16 kHz; 12 kHz (above 8 kHz Nyquist) must be filtered, not aliased.
        let pass = resample_all(48_000, 16_000, &tone(48_000, 6_000.0, 1.0), 4096);
        let stop = resample_all(48_000, 16_000, &tone(48_000, 12_000.0, 1.0), 4096);
        let rms = |v: &[f32]| (v[2000..14000].iter().map(|x| x * x).sum::<f32>() / 12000.0).sqrt();
        assert!(rms(&pass) > 0.3, "passband rms {}", rms(&pass));
        assert!(rms(&stop) < 0.01, "stopband rms {}", rms(&stop));
    }
}
