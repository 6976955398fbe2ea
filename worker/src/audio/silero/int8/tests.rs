use super::*;

fn matrix(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..rows * cols).map(|_| rng.f32() - 0.5).collect()
}

/// The product of the quantised values, in `f64`: what both kernels must give.
fn reference(a: &QMatrix, b: &QCols, c: &mut [f32], lc: Layout) {
    for r in 0..a.rows {
        for j in 0..b.n {
            let (panel, lane) = (r / MR, r % MR);
            let mut sum = 0i64;
            for q in 0..a.quads {
                let x = b.quad(j, q).to_le_bytes();
                for (i, &xi) in x.iter().enumerate() {
                    let w = a.packed[((panel * a.quads + q) * MR + lane) * QUAD + i];
                    sum += i64::from(xi) * i64::from(w);
                }
            }
            c[j * lc.col_stride + r] += sum as f32 * (a.scale[r] * b.scale[j]);
        }
    }
}

#[test]
fn kernels_agree_with_the_reference_and_approximate_the_float_product() {
    // conv 1's shape (k 387: not a multiple of 4) and a column count that is not a multiple
    // of NR; the columns strided, as in the spectrogram buffer.
    let (m, k, n, stride) = (128, 387, 13, 400);
    let w = matrix(m, k, 1);
    let mut rng = fastrand::Rng::with_seed(2);
    let b: Vec<f32> = (0..n * stride).map(|_| rng.f32() * 3.0).collect();
    let a = QMatrix::new(&w, m, k);
    let mut q = QCols::default();
    q.quantise(&b, Layout::cols(k, n, stride));
    let lc = Layout::cols(m, n, m + 8);
    let mut got = vec![1.0f32; n * (m + 8)];
    gemm_acc(&a, &q, &mut got, lc);
    let mut port = vec![1.0f32; n * (m + 8)];
    portable(&a, &q, &mut port, lc);
    let mut want = vec![1.0f32; n * (m + 8)];
    reference(&a, &q, &mut want, lc);
    assert_eq!(
        got, port,
        "the dispatched kernel equals the portable one exactly"
    );
    for (i, (g, r)) in got.iter().zip(&want).enumerate() {
        assert!((g - r).abs() <= 1e-5 * r.abs().max(1.0), "{i}: {g} vs {r}");
    }
    // Against the float product: within 1 % of the output's scale.
    for j in 0..n {
        for r in 0..m {
            let exact: f32 = (0..k).map(|i| w[r * k + i] * b[j * stride + i]).sum();
            let g = got[j * (m + 8) + r] - 1.0;
            assert!(
                (g - exact).abs() < 0.01 * 3.0 * (k as f32).sqrt(),
                "{r},{j}: {g} vs {exact}"
            );
        }
    }
    // The padding rows between columns are untouched.
    assert!(got.chunks(m + 8).all(|c| c[m..].iter().all(|&x| x == 1.0)));
}

#[test]
fn zero_nan_and_infinite_columns_add_nothing() {
    let (m, k) = (32, 8);
    let a = QMatrix::new(&matrix(m, k, 3), m, k);
    let mut b = vec![0.0f32; 3 * k];
    b[k] = f32::NAN;
    b[2 * k + 1] = f32::INFINITY;
    let mut q = QCols::default();
    q.quantise(&b, Layout::cols(k, 3, k));
    let mut c = vec![0.5f32; 3 * m];
    gemm_acc(&a, &q, &mut c, Layout::cols(m, 3, m));
    assert!(c.iter().all(|&x| x == 0.5), "{c:?}");
}

#[test]
fn the_matvec_takes_the_offset_off_and_kernels_agree() {
    // The LSTM's shape: 512 rows, 128 signed inputs.
    let (m, k) = (512, 128);
    let w = matrix(m, k, 4);
    let a = QMatrix::new(&w, m, k);
    let mut rng = fastrand::Rng::with_seed(5);
    let x: Vec<f32> = (0..k).map(|_| 2.0 * rng.f32() - 1.0).collect();
    let mut q = QVec::default();
    q.quantise(&x);
    let mut got = vec![0.25f32; m];
    matvec_acc(&a, &q, &mut got);
    let mut port = vec![0.25f32; m];
    matvec_portable(&a, &q, &mut port);
    assert_eq!(
        got, port,
        "the dispatched kernel equals the portable one exactly"
    );
    for (r, g) in got.iter().enumerate() {
        let exact: f32 = (0..k).map(|i| w[r * k + i] * x[i]).sum::<f32>() + 0.25;
        // Without the offset's correction the error would be 128 steps per weight.
        assert!((g - exact).abs() < 0.1, "row {r}: {g} vs {exact}");
    }
    // A zero vector adds nothing.
    q.quantise(&vec![0.0; k]);
    let mut y = vec![0.25f32; m];
    matvec_acc(&a, &q, &mut y);
    assert!(y.iter().all(|&v| v == 0.25));
}
