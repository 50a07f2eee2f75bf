//! One training iteration's loss and gradients, computed analytically over plain
//! row-major buffers, for both spaces.
//!
//! candle's op-by-op autograd computes the same numbers (`Model::logits` builds that
//! graph, and the tests hold the two to each other), but with a graph node, an
//! allocation and a pass over memory for every elementwise step of the realisation,
//! which for these small matrices costs several times the arithmetic. Here every
//! large step is either a GEMM (faer) or one fused loop.
//!
//! Buffers are time-major: row `t·B + s` is sequence `s` at step `t`.

use crate::cells::tanh as cell;
use crate::kernels::fast_tanh;
use anyhow::{Result, bail};
use faer::linalg::solvers::{Llt, Solve};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rayon::prelude::*;

/// A row-major view.
fn view(s: &[f32], rows: usize, cols: usize) -> MatRef<'_, f32> {
    MatRef::from_row_major_slice(s, rows, cols)
}

/// A row-major mutable view.
fn view_mut(s: &mut [f32], rows: usize, cols: usize) -> MatMut<'_, f32> {
    MatMut::from_row_major_slice_mut(s, rows, cols)
}

/// `dst (+)= lhs · rhs` on every thread.
fn gemm(dst: MatMut<'_, f32>, accum: Accum, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) {
    faer::linalg::matmul::matmul(dst, accum, lhs, rhs, 1.0, Par::rayon(0));
}

/// `aᵀ · b` for tall `a` (`n × p`) and `b` (`n × q`): the rows are split across
/// threads and the partial products summed, since a GEMM library finds little to
/// share out in a `p × q` result when `p` and `q` are a few dozen and `n` is tens of
/// thousands.
fn gemm_tn(a: MatRef<'_, f32>, b: MatRef<'_, f32>) -> Vec<f32> {
    let (n, p, q) = (a.nrows(), a.ncols(), b.ncols());
    let chunks = rayon::current_num_threads().min(n.div_ceil(1024)).max(1);
    let partials: Vec<Vec<f32>> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let (r0, r1) = (n * c / chunks, n * (c + 1) / chunks);
            let mut out = vec![0.0f32; p * q];
            faer::linalg::matmul::matmul(
                view_mut(&mut out, p, q),
                Accum::Replace,
                a.subrows(r0, r1 - r0).transpose(),
                b.subrows(r0, r1 - r0),
                1.0,
                Par::Seq,
            );
            out
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut sum = partials.next().unwrap_or_else(|| vec![0.0; p * q]);
    for part in partials {
        sum.iter_mut().zip(&part).for_each(|(s, v)| *s += v);
    }
    sum
}

/// `dst += src`, elementwise.
fn add_into(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
}

/// One minibatch: time-major inputs and the labels of its scored steps.
pub struct Batch<'a> {
    /// Inputs `(L·B) × n_in`.
    pub inputs: &'a [f32],
    /// Labels `(L − first_scored)·B`.
    pub labels: &'a [u32],
    /// Steps `L`.
    pub len: usize,
    /// Sequences `B`.
    pub count: usize,
    /// First scored step.
    pub first_scored: usize,
}

/// The shapes of a one-layer network.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    /// Input width.
    pub n_in: usize,
    /// Hidden units.
    pub hidden: usize,
    /// Classes.
    pub classes: usize,
}

impl Dims {
    /// Rows of `W¹`: bias, inputs, recurrence.
    pub fn k1(&self) -> usize {
        1 + self.n_in + self.hidden
    }
    /// Rows of `W²`: bias, hidden.
    pub fn k2(&self) -> usize {
        1 + self.hidden
    }
}

/// The recurrent layer's states `(L·B) × H` for inputs `(L·B) × n_in`.
pub fn states(inputs: &[f32], w1: &[f32], dims: Dims, len: usize, count: usize) -> Vec<f32> {
    let Dims {
        n_in, hidden: h, ..
    } = dims;
    let rows = len * count;
    // p_t = b + x_t W_x for all steps in one product, then the recurrence.
    let mut sums: Vec<f32> = (0..rows).flat_map(|_| w1[..h].iter().copied()).collect();
    gemm(
        view_mut(&mut sums, rows, h),
        Accum::Add,
        view(inputs, rows, n_in),
        view(&w1[h..(1 + n_in) * h], n_in, h),
    );
    cell::unroll_kernel(
        &sums,
        &w1[(1 + n_in) * h..],
        &vec![0.0; count * h],
        (len, count, h),
    )
}

/// Mean cross-entropy of `logits` (`rows × C`) against `labels`; turns `logits`
/// into `∂loss/∂logits` in place. Returns the loss and the number classified right.
pub fn cross_entropy_grad(
    logits: &mut [f32],
    labels: &[u32],
    classes: usize,
) -> Result<(f64, usize)> {
    let rows = labels.len();
    let mut loss = 0.0f64;
    let mut right = 0;
    for (row, &label) in logits.chunks_exact_mut(classes).zip(labels) {
        let (best, max) = row
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
            );
        right += usize::from(best == label as usize);
        let mut total = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            total += *v;
        }
        loss += (total.ln() - row[label as usize].ln()) as f64;
        for v in row.iter_mut() {
            *v /= total * rows as f32;
        }
        row[label as usize] -= 1.0 / rows as f32;
    }
    let loss = loss / rows as f64;
    if !loss.is_finite() {
        bail!("the loss is {loss}");
    }
    Ok((loss, right))
}

/// The output layer and loss on a batch's states, and the backward pass to them:
/// adds `∂L/∂W²` to `grad_w2` and returns `∂L/∂states` (zero on unscored steps).
fn output_backward(
    states: &[f32],
    w2: &[f32],
    batch: &Batch,
    dims: Dims,
    grad_w2: &mut [f32],
) -> Result<(f64, usize, Vec<f32>)> {
    let Dims {
        hidden: h,
        classes: c,
        ..
    } = dims;
    let b = batch.count;
    let scored_rows = (batch.len - batch.first_scored) * b;
    let scored = &states[batch.first_scored * b * h..];
    let mut logits: Vec<f32> = (0..scored_rows)
        .flat_map(|_| w2[..c].iter().copied())
        .collect();
    gemm(
        view_mut(&mut logits, scored_rows, c),
        Accum::Add,
        view(scored, scored_rows, h),
        view(&w2[c..], h, c),
    );
    let (loss, right) = cross_entropy_grad(&mut logits, batch.labels, c)?;
    let grad_logits = view(&logits, scored_rows, c);
    // Bias row: column sums; weights: statesᵀ · ∂logits.
    for row in logits.chunks_exact(c) {
        for (g, &d) in grad_w2[..c].iter_mut().zip(row) {
            *g += d;
        }
    }
    add_into(
        &mut grad_w2[c..],
        &gemm_tn(view(scored, scored_rows, h), grad_logits),
    );
    let mut grad_states = vec![0.0; batch.len * b * h];
    gemm(
        view_mut(
            &mut grad_states[batch.first_scored * b * h..],
            scored_rows,
            h,
        ),
        Accum::Replace,
        grad_logits,
        view(&w2[c..], h, c).transpose(),
    );
    Ok((loss, right, grad_states))
}

/// Backpropagation through the recurrent layer: from `∂L/∂states`, adds `∂L/∂W¹` to
/// `grad_w1`.
fn recurrent_backward(
    inputs: &[f32],
    states: &[f32],
    grad_states: &[f32],
    w1: &[f32],
    dims: Dims,
    (len, count): (usize, usize),
    grad_w1: &mut [f32],
) {
    let Dims {
        n_in, hidden: h, ..
    } = dims;
    let rows = len * count;
    let grad_sums = cell::bptt_kernel(states, grad_states, &w1[(1 + n_in) * h..], (len, count, h));
    // ∂W¹ = Σ_t [1, x_t, h_{t-1}]ᵀ ∂s_t, in three blocks; h_{-1} = 0 drops step 0.
    for row in grad_sums.chunks_exact(h) {
        for (g, &d) in grad_w1[..h].iter_mut().zip(row) {
            *g += d;
        }
    }
    add_into(
        &mut grad_w1[h..(1 + n_in) * h],
        &gemm_tn(view(inputs, rows, n_in), view(&grad_sums, rows, h)),
    );
    let shifted = rows - count;
    add_into(
        &mut grad_w1[(1 + n_in) * h..],
        &gemm_tn(
            view(&states[..shifted * h], shifted, h),
            view(&grad_sums[count * h..], shifted, h),
        ),
    );
}

/// Loss, correct count, `∂L/∂W¹` and `∂L/∂W²` of a weight-space network on a batch.
pub fn weight_space(w1: &[f32], w2: &[f32], batch: &Batch, dims: Dims) -> Result<Gradients> {
    let states = states(batch.inputs, w1, dims, batch.len, batch.count);
    let mut grad_w1 = vec![0.0; w1.len()];
    let mut grad_w2 = vec![0.0; w2.len()];
    let (loss, right, grad_states) = output_backward(&states, w2, batch, dims, &mut grad_w2)?;
    recurrent_backward(
        batch.inputs,
        &states,
        &grad_states,
        w1,
        dims,
        (batch.len, batch.count),
        &mut grad_w1,
    );
    Ok(Gradients {
        loss,
        right,
        grads: vec![grad_w1, grad_w2],
    })
}

/// The result of one forward and backward pass.
pub struct Gradients {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Scored steps classified right.
    pub right: usize,
    /// Gradients of the parameters, in the model's parameter order.
    pub grads: Vec<Vec<f32>>,
}

/// A ridge solve kept for its backward pass.
struct Solved {
    llt: Llt<f64>,
    w: Vec<f32>,
}

/// `(AᵀA + λI)⁻¹AᵀT`, factorised in f64, from `[A | T]`: row-major, `n × (k + m)`.
///
/// Keeping `A` and `T` side by side lets one product `Aᵀ[A | T]` form both `AᵀA`
/// and `AᵀT` in a single pass over the `n` rows.
fn ridge(at: &[f32], n: usize, k: usize, m: usize, lambda: f64) -> Result<Solved> {
    let a = MatRef::from_row_major_slice_with_stride(at, n, k, k + m);
    let normal = gemm_tn(a, view(at, n, k + m));
    if normal.iter().any(|v| !v.is_finite()) {
        bail!("ridge solve: the normal equations hold non-finite values");
    }
    let g = Mat::from_fn(k, k, |i, j| {
        normal[i * (k + m) + j] as f64 + if i == j { lambda } else { 0.0 }
    });
    let llt = match g.llt(Side::Lower) {
        Ok(llt) => llt,
        Err(e) => bail!("ridge solve: AᵀA + λI ({k}×{k}) is not positive definite ({e:?})"),
    };
    let rhs: Vec<f32> = (0..k)
        .flat_map(|i| normal[i * (k + m) + k..(i + 1) * (k + m)].iter().copied())
        .collect();
    let w = solve_f32(&llt, &rhs, k, m);
    Ok(Solved { llt, w })
}

/// `G⁻¹R` through a factorisation of `G`, for row-major `R` (`k × m`).
fn solve_f32(llt: &Llt<f64>, r: &[f32], k: usize, m: usize) -> Vec<f32> {
    let r = Mat::from_fn(k, m, |i, j| r[i * m + j] as f64);
    let w = llt.solve(&r);
    (0..k * m).map(|i| w[(i / m, i % m)] as f32).collect()
}

/// Backward through `W = solve(A, T)` given `[A | T]` (`n × (k + m)`) and `∂L/∂W`
/// (`k × m`): adds `∂L/∂T` to `grad_t` and returns `∂L/∂A` restricted to columns
/// `from..k` (`n × (k − from)`).
fn ridge_backward(
    solved: &Solved,
    grad_w: &[f32],
    at: &[f32],
    (n, k, m): (usize, usize, usize),
    from: usize,
    grad_t: &mut [f32],
) -> Vec<f32> {
    // ∂R = G⁻¹ ∂W;  ∂G = −∂R Wᵀ;  ∂T = A ∂R;  ∂A = A (∂G + ∂Gᵀ) + T ∂Rᵀ.
    // Both outputs come from one pass: A · [∂R | (∂G + ∂Gᵀ)[:, from..]], then
    // T ∂R[from.., :]ᵀ added to the second block.
    let grad_r = solve_f32(&solved.llt, grad_w, k, m);
    let mut grad_g = vec![0.0f32; k * k];
    gemm(
        view_mut(&mut grad_g, k, k),
        Accum::Replace,
        view(&grad_r, k, m),
        view(&solved.w, k, m).transpose(),
    );
    let width = k - from;
    let cols = m + width;
    let mut mixer = vec![0.0f32; k * cols];
    for i in 0..k {
        mixer[i * cols..i * cols + m].copy_from_slice(&grad_r[i * m..(i + 1) * m]);
        for j in from..k {
            mixer[i * cols + m + j - from] = -(grad_g[i * k + j] + grad_g[j * k + i]);
        }
    }
    let a = MatRef::from_row_major_slice_with_stride(at, n, k, k + m);
    let t = MatRef::from_row_major_slice_with_stride(&at[k..], n, m, k + m);
    let mut out = vec![0.0f32; n * cols];
    gemm(
        view_mut(&mut out, n, cols),
        Accum::Replace,
        a,
        view(&mixer, k, cols),
    );
    gemm(
        view_mut(&mut out, n, cols).subcols_mut(m, width),
        Accum::Add,
        t,
        view(&grad_r[from * m..], width, m).transpose(),
    );
    let mut grad_a = vec![0.0f32; n * width];
    for ((row, gt), ga) in out
        .chunks_exact(cols)
        .zip(grad_t.chunks_exact_mut(m))
        .zip(grad_a.chunks_exact_mut(width))
    {
        gt.iter_mut().zip(&row[..m]).for_each(|(g, d)| *g += d);
        ga.copy_from_slice(&row[m..]);
    }
    grad_a
}

/// The fixed part of a target-space network: the realisation inputs and settings.
pub struct Realisation<'a> {
    /// Realisation inputs `X̄`, `(rsl·rbs) × n_in`.
    pub inputs: &'a [f32],
    /// Realisation sequence length.
    pub rsl: usize,
    /// Realisation batch size.
    pub rbs: usize,
    /// Ridge regularisation.
    pub lambda: f64,
    /// Whether the output layer's solve sees the targets' activations (fully
    /// optimistic) rather than the actual states.
    pub optimistic: bool,
    /// Whether the minibatch is the realisation batch itself, so the realisation
    /// pass is the forward pass.
    pub shared: bool,
}

/// Loss, correct count, `∂L/∂T¹` and `∂L/∂T²` of a target-space network on a batch.
pub fn target_space(
    t1: &[f32],
    t2: &[f32],
    real: &Realisation,
    batch: &Batch,
    dims: Dims,
) -> Result<Gradients> {
    let Dims {
        n_in,
        hidden: h,
        classes: c,
    } = dims;
    let (rsl, rbs) = (real.rsl, real.rbs);
    let n = rsl * rbs;
    let (k1, k2) = (dims.k1(), dims.k2());
    if real.shared && (batch.len != rsl || batch.count != rbs) {
        bail!("a shared realisation batch must be the minibatch");
    }

    // 1. Recurrent layer, optimistic through time: Ā¹ = [1, x̄_t, tanh(T¹_{t-1})].
    let mut activations = t1.to_vec();
    activations.iter_mut().for_each(|v| *v = fast_tanh(*v));
    let mut at1 = vec![0.0f32; n * (k1 + h)];
    for (r, row) in at1.chunks_exact_mut(k1 + h).enumerate() {
        row[0] = 1.0;
        row[1..1 + n_in].copy_from_slice(&real.inputs[r * n_in..(r + 1) * n_in]);
        if r >= rbs {
            row[1 + n_in..k1].copy_from_slice(&activations[(r - rbs) * h..(r - rbs + 1) * h]);
        }
        row[k1..].copy_from_slice(&t1[r * h..(r + 1) * h]);
    }
    let solved1 = ridge(&at1, n, k1, h, real.lambda)?;
    let w1 = &solved1.w;

    // 2. The realisation pass.
    let states_bar = states(real.inputs, w1, dims, rsl, rbs);

    // 3. Output layer from the actual states (or the targets' activations).
    let seen = if real.optimistic {
        &activations
    } else {
        &states_bar
    };
    let mut at2 = vec![1.0f32; n * (k2 + c)];
    for ((row, s), t) in at2
        .chunks_exact_mut(k2 + c)
        .zip(seen.chunks_exact(h))
        .zip(t2.chunks_exact(c))
    {
        row[1..k2].copy_from_slice(s);
        row[k2..].copy_from_slice(t);
    }
    let solved2 = ridge(&at2, n, k2, c, real.lambda)?;
    let w2 = &solved2.w;

    // The minibatch: forward, loss, and back to the realised weights.
    let mut grad_w1 = vec![0.0f32; k1 * h];
    let mut grad_w2 = vec![0.0f32; k2 * c];
    let batch_states = if real.shared {
        None
    } else {
        Some(states(batch.inputs, w1, dims, batch.len, batch.count))
    };
    let (loss, right, mut grad_batch_states) = output_backward(
        batch_states.as_ref().unwrap_or(&states_bar),
        w2,
        batch,
        dims,
        &mut grad_w2,
    )?;

    // Back through the output layer's solve.
    let mut grad_t1 = vec![0.0f32; n * h];
    let mut grad_t2 = vec![0.0f32; n * c];
    let grad_seen = ridge_backward(&solved2, &grad_w2, &at2, (n, k2, c), 1, &mut grad_t2);
    let mut grad_activations = vec![0.0f32; n * h];
    let grad_states_bar = if real.optimistic {
        grad_activations.copy_from_slice(&grad_seen);
        None
    } else {
        Some(grad_seen)
    };

    // Back through the recurrent layer's passes: with a shared batch, one pass
    // carries both the loss's and the output solve's gradients.
    match (&batch_states, grad_states_bar) {
        (None, Some(g)) => {
            grad_batch_states
                .iter_mut()
                .zip(&g)
                .for_each(|(a, b)| *a += b);
            recurrent_backward(
                real.inputs,
                &states_bar,
                &grad_batch_states,
                w1,
                dims,
                (rsl, rbs),
                &mut grad_w1,
            );
        }
        (None, None) => {
            recurrent_backward(
                real.inputs,
                &states_bar,
                &grad_batch_states,
                w1,
                dims,
                (rsl, rbs),
                &mut grad_w1,
            );
        }
        (Some(bs), g) => {
            let counts = (batch.len, batch.count);
            recurrent_backward(
                batch.inputs,
                bs,
                &grad_batch_states,
                w1,
                dims,
                counts,
                &mut grad_w1,
            );
            if let Some(g) = g {
                recurrent_backward(
                    real.inputs,
                    &states_bar,
                    &g,
                    w1,
                    dims,
                    (rsl, rbs),
                    &mut grad_w1,
                );
            }
        }
    }

    // Back through the recurrent layer's solve, to T¹ directly and through Ā¹'s
    // stand-in columns (step t's columns hold step t−1's activations).
    let grad_stand_in =
        ridge_backward(&solved1, &grad_w1, &at1, (n, k1, h), 1 + n_in, &mut grad_t1);
    grad_activations[..(n - rbs) * h]
        .iter_mut()
        .zip(&grad_stand_in[rbs * h..])
        .for_each(|(a, b)| *a += b);
    for ((g, &da), &act) in grad_t1.iter_mut().zip(&grad_activations).zip(&activations) {
        *g += da * (1.0 - act * act);
    }
    Ok(Gradients {
        loss,
        right,
        grads: vec![grad_t1, grad_t2],
    })
}
