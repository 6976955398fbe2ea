//! The 8-bit kernels for AVX-512 VNNI (Ice Lake, Zen 4 and later): `vpdpbusd` multiplies 4
//! unsigned by 4 signed bytes and adds the sums to a 32-bit lane, 16 lanes at a time.

use super::super::simd::has_avx512_vnni;
use super::{Layout, MR, NR, QCols, QMatrix, QUAD, QVec};
use std::arch::x86_64::*;

// The kernels are built for AVX-512 VNNI, which the baseline target lacks: each entry checks
// the CPU (a cached flag) before it calls them.
#[allow(unsafe_code)]
pub fn matvec_acc(a: &QMatrix, x: &QVec, y: &mut [f32]) {
    assert!(has_avx512_vnni(), "the VNNI kernels need AVX-512 VNNI");
    // SAFETY: the CPU has AVX-512 F and VNNI (checked just above).
    unsafe { matvec(a, x, y) }
}

#[allow(unsafe_code)]
pub fn gemm_acc(a: &QMatrix, b: &QCols, c: &mut [f32], lc: Layout) {
    assert!(has_avx512_vnni(), "the VNNI kernels need AVX-512 VNNI");
    // SAFETY: the CPU has AVX-512 F and VNNI (checked just above).
    unsafe { kernel(a, b, c, lc) }
}

/// Two panels (32 rows) by [`NR`] columns at a time: 16 registers of sums.
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f,avx512vnni")]
fn kernel(a: &QMatrix, b: &QCols, c: &mut [f32], lc: Layout) {
    let panel_len = a.quads * MR * QUAD;
    for pair in 0..a.rows / (2 * MR) {
        let w0 = &a.packed[2 * pair * panel_len..(2 * pair + 1) * panel_len];
        let w1 = &a.packed[(2 * pair + 1) * panel_len..(2 * pair + 2) * panel_len];
        let row0 = 2 * pair * MR;
        let (sa0, sa1) = {
            let s = &a.scale[row0..row0 + 2 * MR];
            // SAFETY: `s` holds 32 values: two loads of 16.
            unsafe {
                (
                    _mm512_loadu_ps(s.as_ptr()),
                    _mm512_loadu_ps(s.as_ptr().add(MR)),
                )
            }
        };
        for j0 in (0..b.n).step_by(NR) {
            let mut acc0 = [_mm512_setzero_si512(); NR];
            let mut acc1 = [_mm512_setzero_si512(); NR];
            for q in 0..a.quads {
                let (x0, x1) = (&w0[q * 64..q * 64 + 64], &w1[q * 64..q * 64 + 64]);
                // SAFETY: each slice holds the 64 bytes loaded.
                let (v0, v1) = unsafe {
                    (
                        _mm512_loadu_si512(x0.as_ptr().cast()),
                        _mm512_loadu_si512(x1.as_ptr().cast()),
                    )
                };
                for j in 0..NR {
                    let x = _mm512_set1_epi32(b.quad(j0 + j, q) as i32);
                    acc0[j] = _mm512_dpbusd_epi32(acc0[j], x, v0);
                    acc1[j] = _mm512_dpbusd_epi32(acc1[j], x, v1);
                }
            }
            for j in 0..NR.min(b.n - j0) {
                let sb = _mm512_set1_ps(b.scale[j0 + j]);
                let out = &mut c[(j0 + j) * lc.col_stride + row0..][..2 * MR];
                let p = out.as_mut_ptr();
                // SAFETY: `out` holds the 32 values loaded and stored.
                unsafe {
                    let y0 = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(acc0[j]),
                        _mm512_mul_ps(sa0, sb),
                        _mm512_loadu_ps(p),
                    );
                    let y1 = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(acc1[j]),
                        _mm512_mul_ps(sa1, sb),
                        _mm512_loadu_ps(p.add(MR)),
                    );
                    _mm512_storeu_ps(p, y0);
                    _mm512_storeu_ps(p.add(MR), y1);
                }
            }
        }
    }
}

/// Eight panels (128 rows) at a time: eight independent chains of sums.
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f,avx512vnni")]
fn matvec(a: &QMatrix, x: &QVec, y: &mut [f32]) {
    const GROUP: usize = 8;
    let panel_len = a.quads * MR * QUAD;
    let sx = _mm512_set1_ps(x.scale);
    let offset = _mm512_set1_epi32(128);
    for (g, out) in y.chunks_exact_mut(GROUP * MR).enumerate() {
        let w = &a.packed[g * GROUP * panel_len..(g + 1) * GROUP * panel_len];
        let mut acc = [_mm512_setzero_si512(); GROUP];
        for (q, xq) in x.data.chunks_exact(QUAD).enumerate() {
            let xv = _mm512_set1_epi32(i32::from_le_bytes([xq[0], xq[1], xq[2], xq[3]]));
            for (p, s) in acc.iter_mut().enumerate() {
                let wq = &w[p * panel_len + q * 64..p * panel_len + q * 64 + 64];
                // SAFETY: `wq` holds the 64 bytes loaded.
                let wv = unsafe { _mm512_loadu_si512(wq.as_ptr().cast()) };
                *s = _mm512_dpbusd_epi32(*s, xv, wv);
            }
        }
        for (p, (s, o)) in acc.iter().zip(out.chunks_exact_mut(MR)).enumerate() {
            let row = (g * GROUP + p) * MR;
            let (sums, scale) = (&a.sums[row..row + MR], &a.scale[row..row + MR]);
            // SAFETY: `sums`, `scale` and `o` each hold the 16 values loaded or stored.
            unsafe {
                let sums = _mm512_loadu_si512(sums.as_ptr().cast());
                let exact = _mm512_sub_epi32(*s, _mm512_mullo_epi32(offset, sums));
                let y = _mm512_fmadd_ps(
                    _mm512_cvtepi32_ps(exact),
                    _mm512_mul_ps(_mm512_loadu_ps(scale.as_ptr()), sx),
                    _mm512_loadu_ps(o.as_ptr()),
                );
                _mm512_storeu_ps(o.as_mut_ptr(), y);
            }
        }
    }
}
