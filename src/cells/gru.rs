//! A GRU whose every sum is linear in the layer's input `[1, x_t, h_{t-1}]`, so one
//! ridge solve realises all its weights.
//!
//! Sums per unit, four blocks of `H` columns: `z, r, a, b`.
//! `z_t = σ(s_z)`, `r_t = σ(s_r)`, `n_t = tanh(a_t + r_t ⊙ b_t)`,
//! `h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}`.
//!
//! This is the reset-after formulation of cuDNN and PyTorch
//! (`n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`) with the candidate's input part
//! `a` and recurrent part `b` kept as separate sums. Applying the reset before the
//! candidate's product (`W_n [x, r ⊙ h]`) would make that sum non-linear in the
//! layer input and need a second solve with its own targets; keeping `a` and `b`
//! apart avoids it. In this form each of `a` and `b` may draw on both `x` and `h`:
//! a PyTorch GRU is the case `a`'s recurrent rows and `b`'s input rows are zero.

use crate::kernels::Float;

/// One step: from the sums (`m × 4H`) and the previous state (`m × H`), writes
/// `z, r, n` and the raw `b` sum (what the backward pass needs) and `h`.
pub fn step<T: Float>(sums: &[T], h_prev: &[T], gates: &mut [T], h_out: &mut [T], h: usize) {
    let one = T::of(1.0);
    for (row, ((s, g), hr)) in sums
        .chunks_exact(4 * h)
        .zip(gates.chunks_exact_mut(4 * h))
        .zip(h_out.chunks_exact_mut(h))
        .enumerate()
    {
        let hp = &h_prev[row * h..(row + 1) * h];
        for u in 0..h {
            let z = s[u].sigmoid();
            let r = s[h + u].sigmoid();
            let b = s[3 * h + u];
            let n = (s[2 * h + u] + r * b).tanh();
            (g[u], g[h + u], g[2 * h + u], g[3 * h + u]) = (z, r, n, b);
            hr[u] = (one - z) * n + z * hp[u];
        }
    }
}

/// One step back: from `∂L/∂h_t` arriving through the layers and the recurrent
/// product (`grad`, `m × H`) and through the direct path `z ⊙ h_{t-1}` of step `t+1`
/// (`carry`, replaced by this step's direct path to `h_{t-1}`), writes `∂L/∂sums`.
pub fn step_backward<T: Float>(
    gates: &[T],
    h_prev: &[T],
    grad: &[T],
    carry: &mut [T],
    out: &mut [T],
    h: usize,
) {
    let one = T::of(1.0);
    for (row, (g, d)) in gates
        .chunks_exact(4 * h)
        .zip(out.chunks_exact_mut(4 * h))
        .enumerate()
    {
        for u in 0..h {
            let k = row * h + u;
            let (z, r, n, b) = (g[u], g[h + u], g[2 * h + u], g[3 * h + u]);
            let dh = grad[k] + carry[k];
            let dn = dh * (one - z) * (one - n * n);
            d[u] = dh * (h_prev[k] - n) * z * (one - z);
            d[h + u] = dn * b * r * (one - r);
            d[2 * h + u] = dn;
            d[3 * h + u] = dn * r;
            carry[k] = dh * z;
        }
    }
}
