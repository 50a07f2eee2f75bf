//! The LSTM cell of the paper's reference code, one step for a block of rows.
//!
//! Sums per unit are laid out in four blocks of `H` columns: `i, j, f, o`.
//! `c_t = c_{t-1}·σ(f + 1) + σ(i)·tanh(j)`, `h_t = tanh(c_t)·σ(o)`; the forget gate's
//! bias of 1 inside the sigmoid keeps memory by default at the start of training.

use crate::kernels::Float;

/// One step: from the sums (`m × 4H`) and the previous cell state (`m × H`), writes
/// the gate activations `σ(i), tanh(j), σ(f + 1), σ(o)`, the cell state and `h`.
pub fn step<T: Float>(
    sums: &[T],
    c_prev: &[T],
    gates: &mut [T],
    c: &mut [T],
    h_out: &mut [T],
    h: usize,
) {
    let one = T::of(1.0);
    for (r, (((s, g), c), hr)) in sums
        .chunks_exact(4 * h)
        .zip(gates.chunks_exact_mut(4 * h))
        .zip(c.chunks_exact_mut(h))
        .zip(h_out.chunks_exact_mut(h))
        .enumerate()
    {
        let cp = &c_prev[r * h..(r + 1) * h];
        for u in 0..h {
            let i = s[u].sigmoid();
            let j = s[h + u].tanh();
            let f = (s[2 * h + u] + one).sigmoid();
            let o = s[3 * h + u].sigmoid();
            (g[u], g[h + u], g[2 * h + u], g[3 * h + u]) = (i, j, f, o);
            c[u] = cp[u] * f + i * j;
            hr[u] = c[u].tanh() * o;
        }
    }
}

/// One step back: from `∂L/∂h_t` (`grad`, `m × H`) and `∂L/∂c_t` carried from step
/// `t+1` (`carry`, replaced by `∂L/∂c_{t-1}`), writes `∂L/∂sums` (`m × 4H`).
pub fn step_backward<T: Float>(
    gates: &[T],
    c: &[T],
    c_prev: &[T],
    grad: &[T],
    carry: &mut [T],
    out: &mut [T],
    h: usize,
) {
    let one = T::of(1.0);
    for (r, (g, d)) in gates
        .chunks_exact(4 * h)
        .zip(out.chunks_exact_mut(4 * h))
        .enumerate()
    {
        for u in 0..h {
            let k = r * h + u;
            let (i, j, f, o) = (g[u], g[h + u], g[2 * h + u], g[3 * h + u]);
            let tc = c[k].tanh();
            let dh = grad[k];
            let dc = carry[k] + dh * o * (one - tc * tc);
            d[u] = dc * j * i * (one - i);
            d[h + u] = dc * i * (one - j * j);
            d[2 * h + u] = dc * c_prev[k] * f * (one - f);
            d[3 * h + u] = dh * tc * o * (one - o);
            carry[k] = dc * f;
        }
    }
}
