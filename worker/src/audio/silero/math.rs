//! Numerical kernels of the Silero forward pass: strided matrix products (ndarray, with
//! matrixmultiply's runtime-dispatched SIMD kernels underneath) and a vectorisable `exp`.

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

/// A matrix in a slice: `rows × cols`, element `(r, c)` at `r * row_stride + c * col_stride`.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl Layout {
    /// Row-major, rows contiguous.
    pub fn rows(rows: usize, cols: usize) -> Layout {
        Layout {
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// Columns of `rows` contiguous values, `col_stride` apart.
    pub fn cols(rows: usize, cols: usize, col_stride: usize) -> Layout {
        Layout {
            rows,
            cols,
            row_stride: 1,
            col_stride,
        }
    }

    fn dim(&self) -> ndarray::StrideShape<ndarray::Ix2> {
        (self.rows, self.cols).strides((self.row_stride, self.col_stride))
    }
}

/// `c = a · b + c`. The layouts are fixed by the model's shapes, so a mismatch is a programming
/// error: it panics (and the pipeline reports the panic as a failed job, never a crash).
pub fn gemm_acc(a: &[f32], la: Layout, b: &[f32], lb: Layout, c: &mut [f32], lc: Layout) {
    let a = ArrayView2::from_shape(la.dim(), a).expect("gemm: a's layout fits its slice");
    let b = ArrayView2::from_shape(lb.dim(), b).expect("gemm: b's layout fits its slice");
    let mut c = ArrayViewMut2::from_shape(lc.dim(), c).expect("gemm: c's layout fits its slice");
    ndarray::linalg::general_mat_mul(1.0, &a, &b, 1.0, &mut c);
}

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `e^x` to about 2 ulp (Cephes' `expf`), without branches or float-to-int casts, so that loops
/// over it vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round x·log2(e) to the nearest integer n by adding 1.5 · 2^23: n is then the low bits of
    // `t`'s representation, so 2^n is built from them with integer operations only.
    const SHIFT: f32 = 12_582_912.0;
    let t = x * LOG2E + SHIFT;
    let n = t - SHIFT;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5e-1;
    let y = p * r * r + r + 1.0;
    let scale = t.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(127) << 23;
    y * f32::from_bits(scale)
}

#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    // tanh(x) = 1 − 2 / (e^{2x} + 1): exact at both ends, 1e-7 absolute in between.
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_sigmoid_and_tanh_are_accurate() {
        let mut worst_exp = 0.0f64;
        let mut worst = 0.0f64;
        for i in -20_000..=20_000 {
            let x = i as f32 * 0.004;
            let e = f64::from(x).exp();
            worst_exp = worst_exp.max(((f64::from(exp(x)) - e) / e).abs());
            worst = worst.max((f64::from(sigmoid(x)) - 1.0 / (1.0 + (-f64::from(x)).exp())).abs());
            worst = worst.max((f64::from(tanh(x)) - f64::from(x).tanh()).abs());
        }
        assert!(worst_exp < 5e-7, "exp relative error {worst_exp}");
        assert!(worst < 5e-7, "sigmoid/tanh absolute error {worst}");
        assert!(sigmoid(-1000.0) < 1e-30);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(tanh(1000.0), 1.0);
        assert_eq!(tanh(-1000.0), -1.0);
    }

    #[test]
    fn gemm_accumulates_with_strides() {
        // a = [[1, 2], [3, 4]] row-major; b = [[5], [6]] as a column; c starts at 1.
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0];
        let mut c = [1.0, 1.0];
        gemm_acc(
            &a,
            Layout::rows(2, 2),
            &b,
            Layout::cols(2, 1, 2),
            &mut c,
            Layout::cols(2, 1, 2),
        );
        assert_eq!(c, [18.0, 40.0]);
    }
}
