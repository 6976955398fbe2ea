//! Steps 4 and 5 of the forward pass: the LSTM cell, one frame at a time (its state carries from
//! frame to frame, so this is the one part that cannot be a product over the block), and the
//! output.

use super::int8;
use super::math::{sigmoid, tanh};
use super::weights::Weights;
use super::{HIDDEN, PANEL, Quant};

/// `g += R · h` in `f32`.
#[inline(always)]
fn recurrent_f32<const FMA: bool>(w: &Weights, g: &mut [f32], h: &[f32; HIDDEN]) {
    // g += R · h, one panel of rows at a time, its sums in registers.
    for (gp, panel) in g
        .chunks_exact_mut(PANEL)
        .zip(w.lstm_r_panels.chunks_exact(PANEL * HIDDEN))
    {
        // Two sets of sums, even and odd k: twice the independent chains of multiply-adds,
        // which a single set leaves waiting on each other's latency.
        let mut even = [0.0f32; PANEL];
        let mut odd = [0.0f32; PANEL];
        even.copy_from_slice(gp);
        for (cols, hk) in panel.chunks_exact(2 * PANEL).zip(h.chunks_exact(2)) {
            let (c0, c1) = cols.split_at(PANEL);
            for ((a, b), (&r0, &r1)) in even.iter_mut().zip(odd.iter_mut()).zip(c0.iter().zip(c1)) {
                *a = if FMA {
                    r0.mul_add(hk[0], *a)
                } else {
                    *a + r0 * hk[0]
                };
                *b = if FMA {
                    r1.mul_add(hk[1], *b)
                } else {
                    *b + r1 * hk[1]
                };
            }
        }
        for ((g, a), b) in gp.iter_mut().zip(&even).zip(&odd) {
            *g = a + b;
        }
    }
}

/// Steps 4 and 5 for one frame: `g` holds the gates' input part and is overwritten.
#[inline(always)]
pub(super) fn lstm_step<const FMA: bool>(
    w: &Weights,
    quant: Option<&mut Quant>,
    g: &mut [f32],
    h: &mut [f32; HIDDEN],
    c: &mut [f32; HIDDEN],
) -> f32 {
    if let Some(q) = quant {
        q.h.quantise(h);
        int8::matvec_acc(&q.w.recurrent, &q.h, g);
    } else {
        recurrent_f32::<FMA>(w, g, h);
    }
    // The gates, each a vectorisable loop over the units.
    let (gi, rest) = g.split_at_mut(HIDDEN);
    let (gf, rest) = rest.split_at_mut(HIDDEN);
    let (gg, go) = rest.split_at_mut(HIDDEN);
    for gate in [&mut *gi, &mut *gf, &mut *go] {
        for x in gate.iter_mut() {
            *x = sigmoid(*x);
        }
    }
    for x in gg.iter_mut() {
        *x = tanh(*x);
    }
    for j in 0..HIDDEN {
        c[j] = gf[j] * c[j] + gi[j] * gg[j];
    }
    for j in 0..HIDDEN {
        h[j] = go[j] * tanh(c[j]);
    }
    // The output: sigmoid(w · relu(h) + b), summed in independent lanes.
    let mut lanes = [0.0f32; 8];
    for (wc, hc) in w.out_w.chunks_exact(8).zip(h.chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += wc[i] * hc[i].max(0.0);
        }
    }
    sigmoid(w.out_b + lanes.iter().sum::<f32>())
}
