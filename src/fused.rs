//! One training iteration's loss and gradients, computed analytically over plain
//! row-major buffers, for both spaces, any cell and any depth.
//!
//! candle's op-by-op autograd computes the same numbers for one tanh layer
//! (`Model::logits` builds that graph, and the tests hold the two to each other),
//! but with a graph node, an allocation and a pass over memory for every
//! elementwise step of the realisation, which for these small matrices costs
//! several times the arithmetic. Here every large step is a GEMM (faer) or one
//! fused loop. Generic over the float type: f32 trains, f64 checks gradients
//! against finite differences.
//!
//! Buffers are time-major: row `t·B + s` is sequence `s` at step `t`. A layer's
//! weights are `(1 + in + H) × G·H`, rows bias, inputs, recurrence; the output
//! layer's `(1 + H_top) × C`.

use crate::cells::{self, CellKind, State, Trace};
use crate::kernels::Float;
use anyhow::{Result, bail};
use faer::linalg::solvers::{Llt, Solve};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rayon::prelude::*;

/// A row-major view.
fn view<T: Float>(s: &[T], rows: usize, cols: usize) -> MatRef<'_, T> {
    MatRef::from_row_major_slice(s, rows, cols)
}

/// A row-major mutable view.
fn view_mut<T: Float>(s: &mut [T], rows: usize, cols: usize) -> MatMut<'_, T> {
    MatMut::from_row_major_slice_mut(s, rows, cols)
}

/// `dst (+)= lhs · rhs` on every thread.
fn gemm<T: Float>(dst: MatMut<'_, T>, accum: Accum, lhs: MatRef<'_, T>, rhs: MatRef<'_, T>) {
    faer::linalg::matmul::matmul(dst, accum, lhs, rhs, T::of(1.0), Par::rayon(0));
}

/// `aᵀ · b` for tall `a` (`n × p`) and `b` (`n × q`), row-major `p × q`.
///
/// The rows are split across threads and the partial products summed: a GEMM
/// library finds little to share out in a result of a few dozen rows and columns.
fn gemm_tn<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> Vec<T> {
    let (n, p, q) = (a.nrows(), a.ncols(), b.ncols());
    let chunks = rayon::current_num_threads().min(n.div_ceil(1024)).max(1);
    let partials: Vec<Vec<T>> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let (r0, r1) = (n * c / chunks, n * (c + 1) / chunks);
            let mut out = vec![T::of(0.0); p * q];
            faer::linalg::matmul::matmul(
                view_mut(&mut out, p, q),
                Accum::Replace,
                a.subrows(r0, r1 - r0).transpose(),
                b.subrows(r0, r1 - r0),
                T::of(1.0),
                Par::Seq,
            );
            out
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut sum = partials.next().unwrap_or_else(|| vec![T::of(0.0); p * q]);
    for part in partials {
        add_into(&mut sum, &part);
    }
    sum
}

/// `dst += src`, elementwise.
fn add_into<T: Float>(dst: &mut [T], src: &[T]) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
}

/// The shape of a network: input width, recurrent layers, classes, cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// Input width.
    pub n_in: usize,
    /// Hidden units of each recurrent layer, bottom first.
    pub layers: Vec<usize>,
    /// Output classes.
    pub classes: usize,
    /// The cell of every recurrent layer.
    pub cell: CellKind,
}

impl Shape {
    /// Input width of layer `l`.
    pub fn width_in(&self, l: usize) -> usize {
        if l == 0 {
            self.n_in
        } else {
            self.layers[l - 1]
        }
    }
    /// Sums (targets' columns) of layer `l`: gates × hidden units.
    pub fn sums(&self, l: usize) -> usize {
        self.cell.gates() * self.layers[l]
    }
    /// Rows of layer `l`'s weights: bias, inputs, recurrence.
    pub fn fan_in(&self, l: usize) -> usize {
        1 + self.width_in(l) + self.layers[l]
    }
    /// Hidden units of the top layer.
    pub fn top(&self) -> usize {
        *self.layers.last().expect("a network has a layer")
    }
    /// Shapes of the weights: every recurrent layer, then the output layer.
    pub fn weight_shapes(&self) -> Vec<(usize, usize)> {
        let mut shapes: Vec<_> = (0..self.layers.len())
            .map(|l| (self.fan_in(l), self.sums(l)))
            .collect();
        shapes.push((1 + self.top(), self.classes));
        shapes
    }
    /// Columns of the targets: every recurrent layer, then the output layer.
    pub fn target_widths(&self) -> Vec<usize> {
        let mut widths: Vec<_> = (0..self.layers.len()).map(|l| self.sums(l)).collect();
        widths.push(self.classes);
        widths
    }
}

/// One minibatch: time-major inputs and the labels of its scored steps.
#[derive(Clone, Copy)]
pub struct Batch<'a, T> {
    /// Inputs `(L·B) × n_in`.
    pub inputs: &'a [T],
    /// Labels `(L − first_scored)·B`.
    pub labels: &'a [u32],
    /// Steps `L`.
    pub len: usize,
    /// Sequences `B`.
    pub count: usize,
    /// First scored step.
    pub first_scored: usize,
    /// The state of every layer before the first step (a language model's state
    /// carried over from the previous chunk); zero when `None`. Gradients stop
    /// there: backpropagation through time is truncated at the chunk.
    pub start: Option<&'a [State<T>]>,
}

/// The result of one forward and backward pass.
pub struct Gradients<T> {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Scored steps classified right.
    pub right: usize,
    /// Gradients of the parameters, in the model's parameter order.
    pub grads: Vec<Vec<T>>,
    /// `∂L/∂inputs` of the batch (`(L·B) × n_in`), for a layer below the network
    /// (an embedding); `None` when the batch is the realisation batch itself.
    pub inputs: Option<Vec<T>>,
    /// The state of every layer after the batch's last step.
    pub end: Vec<State<T>>,
}

/// Loss, number right and end state of a network on a batch (no gradients).
pub struct Scored<T> {
    /// Mean cross-entropy over the scored steps.
    pub loss: f64,
    /// Scored steps classified right.
    pub right: usize,
    /// The state of every layer after the batch's last step.
    pub end: Vec<State<T>>,
}

/// `b + x W_x` for every row of a layer's input `(N × in)`: its sums but for the
/// recurrence, `N × G·H`.
fn input_sums<T: Float>(input: &[T], w: &[T], n: usize, width: usize, g: usize) -> Vec<T> {
    let mut sums: Vec<T> = (0..n).flat_map(|_| w[..g].iter().copied()).collect();
    gemm(
        view_mut(&mut sums, n, g),
        Accum::Add,
        view(input, n, width),
        view(&w[g..(1 + width) * g], width, g),
    );
    sums
}

/// Runs layer `l` over its input, from `start` (or zero).
fn layer_forward<T: Float>(
    shape: &Shape,
    l: usize,
    input: &[T],
    w: &[T],
    start: Option<&State<T>>,
    (len, count): (usize, usize),
) -> Trace<T> {
    let (width, h, g) = (shape.width_in(l), shape.layers[l], shape.sums(l));
    let sums = input_sums(input, w, len * count, width, g);
    cells::forward(
        shape.cell,
        &sums,
        Some(&w[(1 + width) * g..]),
        start,
        (len, count, h),
    )
}

/// Runs every recurrent layer over the inputs, each from its `start` state.
fn layers_forward<T: Float>(
    shape: &Shape,
    weights: &[Vec<T>],
    inputs: &[T],
    start: Option<&[State<T>]>,
    dims: (usize, usize),
) -> Vec<Trace<T>> {
    let mut passes: Vec<Trace<T>> = Vec::with_capacity(shape.layers.len());
    for l in 0..shape.layers.len() {
        let input = if l == 0 { inputs } else { &passes[l - 1].h };
        let pass = layer_forward(shape, l, input, &weights[l], start.map(|s| &s[l]), dims);
        passes.push(pass);
    }
    passes
}

/// Every recurrent layer's pass over a batch, from the batch's start state.
fn batch_forward<T: Float>(shape: &Shape, weights: &[Vec<T>], batch: &Batch<T>) -> Vec<Trace<T>> {
    layers_forward(
        shape,
        weights,
        batch.inputs,
        batch.start,
        (batch.len, batch.count),
    )
}

/// `b + h W` for `rows` top states: the output layer's logits, `rows × C`.
fn output_logits<T: Float>(states: &[T], w: &[T], rows: usize, h: usize, c: usize) -> Vec<T> {
    let mut logits: Vec<T> = (0..rows).flat_map(|_| w[..c].iter().copied()).collect();
    gemm(
        view_mut(&mut logits, rows, c),
        Accum::Add,
        view(states, rows, h),
        view(&w[c..], h, c),
    );
    logits
}

/// The state after every layer's last step.
fn ends<T: Float>(shape: &Shape, passes: &[Trace<T>], count: usize) -> Vec<State<T>> {
    passes
        .iter()
        .zip(&shape.layers)
        .map(|(p, &h)| p.end(count, h))
        .collect()
}

/// Back through layer `l`'s pass: from `∂L/∂h` adds `∂L/∂W` to `grad_w` and returns
/// `∂L/∂input` when `want_input` (else empty).
#[allow(clippy::too_many_arguments)]
fn layer_backward<T: Float>(
    shape: &Shape,
    l: usize,
    pass: &Trace<T>,
    input: &[T],
    grad_h: &[T],
    w: &[T],
    (len, count): (usize, usize),
    grad_w: &mut [T],
    want_input: bool,
) -> Vec<T> {
    let (width, h, g) = (shape.width_in(l), shape.layers[l], shape.sums(l));
    let n = len * count;
    let grad_sums = cells::backward(
        shape.cell,
        pass,
        grad_h,
        Some(&w[(1 + width) * g..]),
        (len, count, h),
    );
    // ∂W = Σ_t [1, x_t, h_{t-1}]ᵀ ∂s_t in three blocks; h_{-1} is the carried
    // start state (a constant: truncated backpropagation), or zero.
    if let Some(start) = &pass.start {
        add_into(
            &mut grad_w[(1 + width) * g..],
            &gemm_tn(
                view(&start.h, count, h),
                view(&grad_sums[..count * g], count, g),
            ),
        );
    }
    for row in grad_sums.chunks_exact(g) {
        add_into(&mut grad_w[..g], row);
    }
    add_into(
        &mut grad_w[g..(1 + width) * g],
        &gemm_tn(view(input, n, width), view(&grad_sums, n, g)),
    );
    let shifted = n - count;
    add_into(
        &mut grad_w[(1 + width) * g..],
        &gemm_tn(
            view(&pass.h[..shifted * h], shifted, h),
            view(&grad_sums[count * g..], shifted, g),
        ),
    );
    if !want_input {
        return Vec::new();
    }
    let mut grad_input = vec![T::of(0.0); n * width];
    gemm(
        view_mut(&mut grad_input, n, width),
        Accum::Replace,
        view(&grad_sums, n, g),
        view(&w[g..(1 + width) * g], width, g).transpose(),
    );
    grad_input
}

/// Mean cross-entropy of `logits` (`rows × C`) against `labels`; turns `logits` into
/// `∂loss/∂logits` in place. Returns the loss and the number classified right.
pub fn cross_entropy_grad<T: Float>(
    logits: &mut [T],
    labels: &[u32],
    classes: usize,
) -> Result<(f64, usize)> {
    let rows = labels.len();
    if rows == 0 {
        return Ok((0.0, 0));
    }
    let mut loss = 0.0f64;
    let mut right = 0;
    let scale = T::of(1.0 / rows as f64);
    for (row, &label) in logits.chunks_exact_mut(classes).zip(labels) {
        let (best, max) =
            row.iter().enumerate().fold(
                (0, row[0]),
                |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
            );
        right += usize::from(best == label as usize);
        let mut total = T::of(0.0);
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            total += *v;
        }
        loss += (total.ln() - row[label as usize].ln()).to_f64();
        for v in row.iter_mut() {
            *v = *v / total * scale;
        }
        row[label as usize] -= scale;
    }
    let loss = loss / rows as f64;
    if !loss.is_finite() {
        bail!("the loss is {loss}");
    }
    Ok((loss, right))
}

/// The output layer and loss on a batch's top states, and back to them: adds
/// `∂L/∂W_out` to `grad_w` and returns `∂L/∂states` (zero on unscored steps).
fn output_backward<T: Float>(
    states: &[T],
    w: &[T],
    batch: &Batch<T>,
    (h, c): (usize, usize),
    grad_w: &mut [T],
) -> Result<(f64, usize, Vec<T>)> {
    let b = batch.count;
    let scored_rows = (batch.len - batch.first_scored) * b;
    let scored = &states[batch.first_scored * b * h..];
    let mut logits = output_logits(scored, w, scored_rows, h, c);
    let (loss, right) = cross_entropy_grad(&mut logits, batch.labels, c)?;
    let grad_logits = view(&logits, scored_rows, c);
    for row in logits.chunks_exact(c) {
        add_into(&mut grad_w[..c], row);
    }
    add_into(
        &mut grad_w[c..],
        &gemm_tn(view(scored, scored_rows, h), grad_logits),
    );
    let mut grad_states = vec![T::of(0.0); batch.len * b * h];
    gemm(
        view_mut(
            &mut grad_states[batch.first_scored * b * h..],
            scored_rows,
            h,
        ),
        Accum::Replace,
        grad_logits,
        view(&w[c..], h, c).transpose(),
    );
    Ok((loss, right, grad_states))
}

/// Loss, number right and end state of a network with the given weights (layers,
/// then output).
pub fn evaluate<T: Float>(
    weights: &[Vec<T>],
    batch: &Batch<T>,
    shape: &Shape,
) -> Result<Scored<T>> {
    let passes = batch_forward(shape, weights, batch);
    let top = &passes.last().expect("a layer").h;
    let mut scratch = vec![T::of(0.0); weights[shape.layers.len()].len()];
    let (loss, right, _) = output_backward(
        top,
        &weights[shape.layers.len()],
        batch,
        (shape.top(), shape.classes),
        &mut scratch,
    )?;
    Ok(Scored {
        loss,
        right,
        end: ends(shape, &passes, batch.count),
    })
}

/// The logits (`(L·B) × C`) of every step of a batch, and the end state: what a
/// language model samples from.
pub fn logits<T: Float>(
    weights: &[Vec<T>],
    batch: &Batch<T>,
    shape: &Shape,
) -> (Vec<T>, Vec<State<T>>) {
    let passes = batch_forward(shape, weights, batch);
    let rows = batch.len * batch.count;
    let top = &passes[shape.layers.len() - 1].h;
    let out = output_logits(
        top,
        &weights[shape.layers.len()],
        rows,
        shape.top(),
        shape.classes,
    );
    (out, ends(shape, &passes, batch.count))
}

/// Back through every layer's pass of a batch, top down, from `∂L/∂h` of the top
/// layer: adds each layer's `∂L/∂W` to `grads` and returns `∂L/∂inputs`.
fn backward_through_layers<T: Float>(
    shape: &Shape,
    passes: &[Trace<T>],
    inputs: &[T],
    grad_top: Vec<T>,
    weights: &[Vec<T>],
    dims: (usize, usize),
    grads: &mut [Vec<T>],
) -> Vec<T> {
    let mut grad_h = grad_top;
    for l in (0..shape.layers.len()).rev() {
        let input = if l == 0 { inputs } else { &passes[l - 1].h };
        grad_h = layer_backward(
            shape,
            l,
            &passes[l],
            input,
            &grad_h,
            &weights[l],
            dims,
            &mut grads[l],
            true,
        );
    }
    grad_h
}

/// Loss, number right and weight gradients of a weight-space network on a batch.
pub fn weight_space<T: Float>(
    weights: &[Vec<T>],
    batch: &Batch<T>,
    shape: &Shape,
) -> Result<Gradients<T>> {
    let dims = (batch.len, batch.count);
    let depth = shape.layers.len();
    let passes = layers_forward(shape, weights, batch.inputs, batch.start, dims);
    let mut grads: Vec<Vec<T>> = weights.iter().map(|w| vec![T::of(0.0); w.len()]).collect();
    let (loss, right, grad_h) = output_backward(
        &passes[depth - 1].h,
        &weights[depth],
        batch,
        (shape.top(), shape.classes),
        &mut grads[depth],
    )?;
    let grad_inputs = backward_through_layers(
        shape,
        &passes,
        batch.inputs,
        grad_h,
        weights,
        dims,
        &mut grads,
    );
    Ok(Gradients {
        loss,
        right,
        grads,
        inputs: Some(grad_inputs),
        end: ends(shape, &passes, batch.count),
    })
}

/// A ridge solve kept for its backward pass.
struct Solved<T> {
    llt: Llt<f64>,
    w: Vec<T>,
}

/// `(AᵀA + λI)⁻¹AᵀT`, factorised in f64, from `[A | T]`: row-major, `n × (k + m)`.
///
/// Keeping `A` and `T` side by side lets one product `Aᵀ[A | T]` form both `AᵀA`
/// and `AᵀT` in a single pass over the `n` rows.
fn ridge<T: Float>(at: &[T], n: usize, k: usize, m: usize, lambda: f64) -> Result<Solved<T>> {
    let a = MatRef::from_row_major_slice_with_stride(at, n, k, k + m);
    let normal = gemm_tn(a, view(at, n, k + m));
    if normal.iter().any(|v| !v.to_f64().is_finite()) {
        bail!("ridge solve: the normal equations hold non-finite values");
    }
    let g = Mat::from_fn(k, k, |i, j| {
        normal[i * (k + m) + j].to_f64() + if i == j { lambda } else { 0.0 }
    });
    let llt = match g.llt(Side::Lower) {
        Ok(llt) => llt,
        Err(e) => bail!("ridge solve: AᵀA + λI ({k}×{k}) is not positive definite ({e:?})"),
    };
    let rhs: Vec<T> = (0..k)
        .flat_map(|i| normal[i * (k + m) + k..(i + 1) * (k + m)].iter().copied())
        .collect();
    let w = solve_with(&llt, &rhs, k, m);
    Ok(Solved { llt, w })
}

/// `G⁻¹R` through a factorisation of `G`, for row-major `R` (`k × m`).
fn solve_with<T: Float>(llt: &Llt<f64>, r: &[T], k: usize, m: usize) -> Vec<T> {
    let r = Mat::from_fn(k, m, |i, j| r[i * m + j].to_f64());
    let w = llt.solve(&r);
    (0..k * m).map(|i| T::of(w[(i / m, i % m)])).collect()
}

/// Backward through `W = solve(A, T)` given `[A | T]` (`n × (k + m)`) and `∂L/∂W`
/// (`k × m`): adds `∂L/∂T` to `grad_t` and returns `∂L/∂A` restricted to columns
/// `from..k` (`n × (k − from)`).
fn ridge_backward<T: Float>(
    solved: &Solved<T>,
    grad_w: &[T],
    at: &[T],
    (n, k, m): (usize, usize, usize),
    from: usize,
    grad_t: &mut [T],
) -> Vec<T> {
    // ∂R = G⁻¹ ∂W;  ∂G = −∂R Wᵀ;  ∂T = A ∂R;  ∂A = A (∂G + ∂Gᵀ) + T ∂Rᵀ.
    // Both outputs come from one pass: A · [∂R | (∂G + ∂Gᵀ)[:, from..]], then
    // T ∂R[from.., :]ᵀ added to the second block.
    let grad_r = solve_with(&solved.llt, grad_w, k, m);
    let mut grad_g = vec![T::of(0.0); k * k];
    gemm(
        view_mut(&mut grad_g, k, k),
        Accum::Replace,
        view(&grad_r, k, m),
        view(&solved.w, k, m).transpose(),
    );
    let width = k - from;
    let cols = m + width;
    let mut mixer = vec![T::of(0.0); k * cols];
    for i in 0..k {
        mixer[i * cols..i * cols + m].copy_from_slice(&grad_r[i * m..(i + 1) * m]);
        for j in from..k {
            mixer[i * cols + m + j - from] = -(grad_g[i * k + j] + grad_g[j * k + i]);
        }
    }
    let a = MatRef::from_row_major_slice_with_stride(at, n, k, k + m);
    let t = MatRef::from_row_major_slice_with_stride(&at[k..], n, m, k + m);
    let mut out = vec![T::of(0.0); n * cols];
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
    let mut grad_a = vec![T::of(0.0); n * width];
    for ((row, gt), ga) in out
        .chunks_exact(cols)
        .zip(grad_t.chunks_exact_mut(m))
        .zip(grad_a.chunks_exact_mut(width))
    {
        add_into(gt, &row[..m]);
        ga.copy_from_slice(&row[m..]);
    }
    grad_a
}

/// The fixed part of a target-space network: the realisation inputs and settings.
pub struct Realisation<'a, T> {
    /// Realisation inputs `X̄`, `(rsl·rbs) × n_in`.
    pub inputs: &'a [T],
    /// Realisation sequence length.
    pub rsl: usize,
    /// Realisation batch size.
    pub rbs: usize,
    /// Ridge regularisation.
    pub lambda: f64,
    /// Whether the output layer's solve sees the top layer's stand-in states (fully
    /// optimistic) rather than its actual states.
    pub optimistic: bool,
    /// Whether the last parameter is the output layer's weights (trained in weight
    /// space) rather than its targets: then there is no output solve.
    pub output_weights: bool,
}

/// Everything one realisation computed, kept for the backward pass.
pub struct Realised<T> {
    /// The realised weights: every recurrent layer, then the output layer.
    pub weights: Vec<Vec<T>>,
    /// The actual passes over `X̄`, one a layer.
    pub passes: Vec<Trace<T>>,
    /// The optimistic stand-in passes (each cell run on its own targets), one a layer.
    pub stand_ins: Vec<Trace<T>>,
    solves: Vec<Solved<T>>,
    /// `[Ā | T]` of every solve.
    systems: Vec<Vec<T>>,
}

/// `[1, input, stand-in h_{t-1}, targets]` rows (or, for the output layer,
/// `[1, input, targets]` with no recurrence).
fn system<T: Float>(
    input: &[T],
    recurrent: Option<&[T]>,
    targets: &[T],
    (n, rbs): (usize, usize),
    (width, h, m): (usize, usize, usize),
) -> Vec<T> {
    let k = 1 + width + h;
    let mut at = vec![T::of(0.0); n * (k + m)];
    for (r, row) in at.chunks_exact_mut(k + m).enumerate() {
        row[0] = T::of(1.0);
        row[1..1 + width].copy_from_slice(&input[r * width..(r + 1) * width]);
        if let (Some(rec), true) = (recurrent, r >= rbs) {
            row[1 + width..k].copy_from_slice(&rec[(r - rbs) * h..(r - rbs + 1) * h]);
        }
        row[k..].copy_from_slice(&targets[r * m..(r + 1) * m]);
    }
    at
}

/// Realises the weights from the targets (every recurrent layer's, then the
/// output layer's): each layer optimistic through time (its stand-in pass supplies
/// `h_{t-1}`), sequential between layers (the actual states of the layer below).
pub fn realise<T: Float>(
    targets: &[Vec<T>],
    real: &Realisation<T>,
    shape: &Shape,
) -> Result<Realised<T>> {
    let (rsl, rbs) = (real.rsl, real.rbs);
    let n = rsl * rbs;
    let depth = shape.layers.len();
    let mut realised = Realised {
        weights: Vec::new(),
        passes: Vec::new(),
        stand_ins: Vec::new(),
        solves: Vec::new(),
        systems: Vec::new(),
    };
    for (l, layer_targets) in targets[..depth].iter().enumerate() {
        let (width, h, g) = (shape.width_in(l), shape.layers[l], shape.sums(l));
        let input = if l == 0 {
            real.inputs
        } else {
            &realised.passes[l - 1].h
        };
        let stand_in = cells::forward(shape.cell, layer_targets, None, None, (rsl, rbs, h));
        let at = system(
            input,
            Some(&stand_in.h),
            layer_targets,
            (n, rbs),
            (width, h, g),
        );
        let solved = ridge(&at, n, 1 + width + h, g, real.lambda)?;
        let pass = layer_forward(shape, l, input, &solved.w, None, (rsl, rbs));
        realised.weights.push(solved.w.clone());
        realised.passes.push(pass);
        realised.stand_ins.push(stand_in);
        realised.solves.push(solved);
        realised.systems.push(at);
    }
    if real.output_weights {
        realised.weights.push(targets[depth].clone());
        return Ok(realised);
    }
    let top = shape.top();
    let seen = if real.optimistic {
        &realised.stand_ins[depth - 1].h
    } else {
        &realised.passes[depth - 1].h
    };
    let at = system(
        seen,
        None,
        &targets[depth],
        (n, rbs),
        (top, 0, shape.classes),
    );
    let solved = ridge(&at, n, 1 + top, shape.classes, real.lambda)?;
    realised.weights.push(solved.w.clone());
    realised.solves.push(solved);
    realised.systems.push(at);
    Ok(realised)
}

/// The sums the realised network actually produces on `X̄`, shaped like the targets:
/// what the initial projection writes into them.
pub fn realised_sums<T: Float>(
    realised: &Realised<T>,
    real: &Realisation<T>,
    shape: &Shape,
) -> Vec<Vec<T>> {
    let (rsl, rbs) = (real.rsl, real.rbs);
    let n = rsl * rbs;
    let depth = shape.layers.len();
    let mut sums = Vec::with_capacity(depth + 1);
    for l in 0..depth {
        let (width, h, g) = (shape.width_in(l), shape.layers[l], shape.sums(l));
        let input = if l == 0 {
            real.inputs
        } else {
            &realised.passes[l - 1].h
        };
        let w = &realised.weights[l];
        let mut s = input_sums(input, w, n, width, g);
        let shifted = n - rbs;
        gemm(
            view_mut(&mut s[rbs * g..], shifted, g),
            Accum::Add,
            view(&realised.passes[l].h[..shifted * h], shifted, h),
            view(&w[(1 + width) * g..], h, g),
        );
        sums.push(s);
    }
    let top = &realised.passes[depth - 1].h;
    let w = &realised.weights[depth];
    sums.push(output_logits(top, w, n, shape.top(), shape.classes));
    sums
}

/// Loss, number right and target gradients of a target-space network on a batch.
///
/// `shared` says the batch is the realisation batch itself: then the realisation
/// passes are the forward passes, and one backward pass per layer carries both
/// the loss's gradients and the solves'.
pub fn target_space<T: Float>(
    targets: &[Vec<T>],
    real: &Realisation<T>,
    batch: &Batch<T>,
    shared: bool,
    shape: &Shape,
) -> Result<Gradients<T>> {
    let (rsl, rbs) = (real.rsl, real.rbs);
    let n = rsl * rbs;
    let depth = shape.layers.len();
    if shared && (batch.len != rsl || batch.count != rbs) {
        bail!("a shared realisation batch must be the minibatch");
    }
    let r = realise(targets, real, shape)?;
    let weights = &r.weights;

    // The minibatch: forward, loss, and back to the realised weights.
    let batch_dims = (batch.len, batch.count);
    if shared && batch.start.is_some() {
        bail!("the realisation batch starts from zero state");
    }
    let batch_passes =
        (!shared).then(|| layers_forward(shape, weights, batch.inputs, batch.start, batch_dims));
    let top_states = &batch_passes.as_ref().unwrap_or(&r.passes)[depth - 1].h;
    let mut grad_w: Vec<Vec<T>> = weights.iter().map(|w| vec![T::of(0.0); w.len()]).collect();
    let (loss, right, grad_top) = output_backward(
        top_states,
        &weights[depth],
        batch,
        (shape.top(), shape.classes),
        &mut grad_w[depth],
    )?;
    let mut grad_t: Vec<Vec<T>> = targets.iter().map(|t| vec![T::of(0.0); t.len()]).collect();

    // Back through the output layer's solve (or, for output weights trained in
    // weight space, their gradient is the parameter's).
    let grad_seen = if real.output_weights {
        grad_t[depth].clone_from(&grad_w[depth]);
        vec![T::of(0.0); n * shape.top()]
    } else {
        ridge_backward(
            &r.solves[depth],
            &grad_w[depth],
            &r.systems[depth],
            (n, 1 + shape.top(), shape.classes),
            1,
            &mut grad_t[depth],
        )
    };

    // A separate minibatch: back through its own passes, layer by layer.
    let mut grad_h = vec![T::of(0.0); n * shape.top()];
    let mut grad_inputs = None;
    if let Some(passes) = &batch_passes {
        grad_inputs = Some(backward_through_layers(
            shape,
            passes,
            batch.inputs,
            grad_top,
            weights,
            batch_dims,
            &mut grad_w,
        ));
    } else {
        grad_h = grad_top;
    }
    let mut grad_top_stand_in = None;
    if real.optimistic {
        grad_top_stand_in = Some(grad_seen);
    } else {
        add_into(&mut grad_h, &grad_seen);
    }

    // The realisation, top down: each layer's actual pass, then its solve, whose
    // input columns lead to the layer below and whose stand-in columns lead to the
    // layer's own targets through its stand-in pass.
    for l in (0..depth).rev() {
        let (width, h, g) = (shape.width_in(l), shape.layers[l], shape.sums(l));
        let input = if l == 0 {
            real.inputs
        } else {
            &r.passes[l - 1].h
        };
        let mut grad_below = layer_backward(
            shape,
            l,
            &r.passes[l],
            input,
            &grad_h,
            &weights[l],
            (rsl, rbs),
            &mut grad_w[l],
            l > 0,
        );
        let grad_a = ridge_backward(
            &r.solves[l],
            &grad_w[l],
            &r.systems[l],
            (n, 1 + width + h, g),
            1,
            &mut grad_t[l],
        );
        let cols = width + h;
        // Row r of Ā holds the stand-in state of row r − B (the step before).
        let mut grad_stand_in = vec![T::of(0.0); n * h];
        for (row, ga) in grad_a.chunks_exact(cols).enumerate() {
            if l > 0 {
                add_into(
                    &mut grad_below[row * width..(row + 1) * width],
                    &ga[..width],
                );
            }
            if row >= rbs {
                add_into(
                    &mut grad_stand_in[(row - rbs) * h..(row - rbs + 1) * h],
                    &ga[width..],
                );
            }
        }
        if l == depth - 1
            && let Some(extra) = &grad_top_stand_in
        {
            add_into(&mut grad_stand_in, extra);
        }
        let through = cells::backward(
            shape.cell,
            &r.stand_ins[l],
            &grad_stand_in,
            None,
            (rsl, rbs, h),
        );
        add_into(&mut grad_t[l], &through);
        grad_h = grad_below;
    }
    Ok(Gradients {
        loss,
        right,
        grads: grad_t,
        inputs: grad_inputs,
        end: ends(
            shape,
            batch_passes.as_deref().unwrap_or(&r.passes),
            batch.count,
        ),
    })
}
