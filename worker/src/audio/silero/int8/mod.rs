//! 8-bit matrix products for the `auto` engine's Silero ([`super::Silero::quantised`]).
//!
//! Weights are quantised once per row (symmetric, `i8`, scale = the row's largest magnitude /
//! 127). The encoder's inputs are quantised per column, one frame's input to a layer, when used
//! (`u8`, scale = its largest value / 255: every such input is a magnitude or follows a ReLU, so
//! none is negative); the LSTM's hidden state, which is signed, per frame around an offset of
//! 128 ([`QVec`]). The products are summed exactly in `i32` (at most 388 · 255 · 127, far from
//! overflow) and scaled back to `f32` once per output. Integer sums have no rounding order, so
//! the AVX-512 VNNI kernels and the portable ones give identical results on every CPU.
//!
//! Measured on the real-recording set and the synthetic corpus before it was adopted
//! (docs/quality.md, docs/performance.md).

use super::math::Layout;

/// Rows per panel: one 512-bit register of `i32` sums.
const MR: usize = 16;
/// Columns computed together.
pub const NR: usize = 8;
/// Values of `k` per `u32`: the four bytes one VNNI instruction multiplies and sums per lane.
const QUAD: usize = 4;

/// A weight matrix quantised per row, in panels of [`MR`] rows: panel `p`, quad `q` holds, for
/// each row `r` of the panel, its 4 weights `w[p·MR + r][4q .. 4q + 4]` (zero past `cols`).
#[derive(Debug)]
pub struct QMatrix {
    rows: usize,
    quads: usize,
    scale: Vec<f32>,
    packed: Vec<i8>,
    /// Each row's quantised weights summed: for inputs stored with an offset ([`matvec_acc`]).
    sums: Vec<i32>,
}

impl QMatrix {
    /// Quantises a row-major `rows × cols` matrix; `rows` is a multiple of 2 · [`MR`].
    pub fn new(w: &[f32], rows: usize, cols: usize) -> QMatrix {
        assert!(
            rows.is_multiple_of(2 * MR) && w.len() == rows * cols,
            "weight shape"
        );
        let quads = cols.div_ceil(QUAD);
        let mut scale = Vec::with_capacity(rows);
        let mut packed = vec![0i8; rows * quads * QUAD];
        let mut sums = Vec::with_capacity(rows);
        for (r, row) in w.chunks_exact(cols).enumerate() {
            let max = row.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let s = if max > 0.0 { max / 127.0 } else { 0.0 };
            scale.push(s);
            let (panel, lane) = (r / MR, r % MR);
            let mut sum = 0i32;
            for (k, &x) in row.iter().enumerate() {
                let at = ((panel * quads + k / QUAD) * MR + lane) * QUAD + k % QUAD;
                packed[at] = if s > 0.0 { (x / s).round() as i8 } else { 0 };
                sum += i32::from(packed[at]);
            }
            sums.push(sum);
        }
        QMatrix {
            rows,
            quads,
            scale,
            packed,
            sums,
        }
    }
}

/// Input columns quantised per column: column `j` is `quads` groups of 4 bytes (its values in
/// order, zero past `k`), with its scale. The column count is rounded up to [`NR`] with zero
/// columns.
#[derive(Debug, Default)]
pub struct QCols {
    n: usize,
    quads: usize,
    scale: Vec<f32>,
    data: Vec<u8>,
}

impl QCols {
    /// Quantises the `lb.cols` columns of `lb.rows` contiguous values (`lb.row_stride` 1) in
    /// `b`, reusing this buffer.
    #[inline(always)]
    pub fn quantise(&mut self, b: &[f32], lb: Layout) {
        debug_assert_eq!(lb.row_stride, 1);
        let (k, n) = (lb.rows, lb.cols);
        let padded = n.div_ceil(NR) * NR;
        self.n = n;
        self.quads = k.div_ceil(QUAD);
        let len = self.quads * QUAD;
        self.scale.clear();
        self.scale.resize(padded, 0.0);
        self.data.clear();
        self.data.resize(padded * len, 0);
        for (j, out) in self.data.chunks_exact_mut(len).take(n).enumerate() {
            let col = &b[j * lb.col_stride..j * lb.col_stride + k];
            let max = max_of(col);
            // Infinite or NaN inputs (a corrupt float file) make a zero column, never a NaN
            // scale: the layers after are then fed zeros, as ReLU feeds them for NaN.
            if !(max > 0.0 && max.is_finite()) {
                continue;
            }
            self.scale[j] = max / 255.0;
            let inv = 255.0 / max;
            for (o, &x) in out.iter_mut().zip(col) {
                // NaN and negatives (none after ReLU) are 0. Adding 1.5 · 2^23 rounds to the
                // nearest integer, which is then the low byte of the sum's bits: no float-to-int
                // conversion, so the loop vectorises.
                let v = x * inv;
                let v = if v > 0.0 { v.min(255.0) } else { 0.0 };
                *o = ((v + 12_582_912.0).to_bits() & 0xff) as u8;
            }
        }
    }

    /// Column `j`'s quad `q`, as one VNNI instruction takes it.
    #[inline(always)]
    fn quad(&self, j: usize, q: usize) -> u32 {
        let at = (j * self.quads + q) * QUAD;
        let b = &self.data[at..at + QUAD];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

/// The largest value of `x` (0 if none is positive), in 16 lanes: a running maximum in one lane
/// cannot be vectorised, because `max` must see NaN in order.
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    for &v in chunks.remainder() {
        lanes[0] = if v > lanes[0] { v } else { lanes[0] };
    }
    lanes.iter().fold(0.0f32, |m, &l| if l > m { l } else { m })
}

/// A signed vector quantised for [`matvec_acc`]: `round(x / scale) + 128` in bytes (1 to 255),
/// zero bytes past its length.
#[derive(Debug, Default)]
pub struct QVec {
    scale: f32,
    data: Vec<u8>,
}

impl QVec {
    #[inline(always)]
    pub fn quantise(&mut self, x: &[f32]) {
        self.data.clear();
        self.data.resize(x.len().div_ceil(QUAD) * QUAD, 0);
        let max = x
            .iter()
            .fold(0.0f32, |m, &v| if v.abs() > m { v.abs() } else { m });
        if !(max > 0.0 && max.is_finite()) {
            self.scale = 0.0;
            self.data[..x.len()].fill(128);
            return;
        }
        self.scale = max / 127.0;
        let inv = 127.0 / max;
        for (o, &v) in self.data.iter_mut().zip(x) {
            let v = v * inv;
            // NaN is 0; the offset makes every value a byte from 1 to 255.
            let v = if v.is_nan() {
                0.0
            } else {
                v.clamp(-127.0, 127.0)
            };
            *o = ((v + 128.0 + 12_582_912.0).to_bits() & 0xff) as u8;
        }
    }
}

/// `y += a · x` for a vector quantised with [`QVec`], `a.rows()` long. Exact in integers as
/// [`gemm_acc`] is; the offset of 128 comes off with the row sums.
pub fn matvec_acc(a: &QMatrix, x: &QVec, y: &mut [f32]) {
    assert!(
        x.data.len() == a.quads * QUAD && y.len() == a.rows && a.rows.is_multiple_of(8 * MR),
        "int8 matvec: shapes"
    );
    if x.scale == 0.0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx512_vnni() {
        return vnni::matvec_acc(a, x, y);
    }
    matvec_portable(a, x, y);
}

/// [`matvec_acc`] with plain integer arithmetic.
fn matvec_portable(a: &QMatrix, x: &QVec, y: &mut [f32]) {
    let panel_len = a.quads * MR * QUAD;
    for (panel, out) in y.chunks_exact_mut(MR).enumerate() {
        let w = &a.packed[panel * panel_len..(panel + 1) * panel_len];
        let acc = panel_dot(w, &x.data);
        for (r, (o, s)) in out.iter_mut().zip(acc).enumerate() {
            let row = panel * MR + r;
            let exact = s - 128 * a.sums[row];
            *o = (exact as f32).mul_add(a.scale[row] * x.scale, *o);
        }
    }
}

/// One panel's sums: `w` is the panel's quads, `x` the input's bytes.
fn panel_dot(w: &[i8], x: &[u8]) -> [i32; MR] {
    let mut acc = [0i32; MR];
    for (wq, xq) in w.chunks_exact(MR * QUAD).zip(x.chunks_exact(QUAD)) {
        for (s, wr) in acc.iter_mut().zip(wq.chunks_exact(QUAD)) {
            for (&xb, &wb) in xq.iter().zip(wr) {
                *s += i32::from(xb) * i32::from(wb);
            }
        }
    }
    acc
}

/// Whether this CPU runs the 8-bit products fast (AVX-512 VNNI). Elsewhere the portable
/// integer code is correct but several times slower than the `f32` products, so
/// [`super::Silero::quantised`] keeps `f32` there.
pub fn fast() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::simd::has_avx512_vnni();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `c += a · b`, `c`'s columns `lc.row_stride` 1 and `a.rows()` long.
pub fn gemm_acc(a: &QMatrix, b: &QCols, c: &mut [f32], lc: Layout) {
    assert!(
        a.quads == b.quads && lc.rows == a.rows && lc.cols == b.n && lc.row_stride == 1,
        "int8 gemm: shapes"
    );
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx512_vnni() {
        return vnni::gemm_acc(a, b, c, lc);
    }
    portable(a, b, c, lc);
}

/// The same sums with plain integer arithmetic.
fn portable(a: &QMatrix, b: &QCols, c: &mut [f32], lc: Layout) {
    for panel in 0..a.rows / MR {
        let w = &a.packed[panel * a.quads * MR * QUAD..(panel + 1) * a.quads * MR * QUAD];
        for j in 0..b.n {
            let col = &b.data[j * b.quads * QUAD..(j + 1) * b.quads * QUAD];
            let acc = panel_dot(w, col);
            let out = &mut c[j * lc.col_stride + panel * MR..][..MR];
            let rows = &a.scale[panel * MR..(panel + 1) * MR];
            for ((o, &s), &ra) in out.iter_mut().zip(&acc).zip(rows) {
                // Fused, as in the VNNI kernel: the same rounding on every CPU.
                *o = (s as f32).mul_add(ra * b.scale[j], *o);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni;

#[cfg(test)]
mod tests;
