//! Recurrent cells: how a layer's pre-activation sums become its state.
//!
//! A cell is used three ways with one implementation: the weight-space forward
//! pass, the target-space forward pass, and the realisation passes over the fixed
//! realisation batch (the actual pass, and the optimistic stand-in pass in which the
//! targets replace the sums). [`forward`] and [`backward`] run a cell over a whole
//! sequence (one kernel call, analytic backpropagation through time); the cells
//! themselves are one step each, in [`tanh`] and [`lstm`].

pub mod gru;
pub mod lstm;
pub mod tanh;

use crate::kernels::{Float, gemm_acc, gemm_acc_bt};
use candle_core::{CpuStorage, Layout, Result, bail};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The cells a network can be built of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellKind {
    /// `h_t = tanh(s_t)`.
    #[default]
    Tanh,
    /// The paper's LSTM: sums `i, j, f, o`; `c_t = c_{t-1}·σ(f + 1) + σ(i)·tanh(j)`,
    /// `h_t = tanh(c_t)·σ(o)` (a forget-gate bias of 1 inside the sigmoid).
    Lstm,
    /// A GRU with every sum linear in the layer input (see [`gru`]): sums
    /// `z, r, a, b`; `n_t = tanh(a + σ(r) ⊙ b)`, `h_t = (1 − σ(z)) ⊙ n_t + σ(z) ⊙ h_{t-1}`.
    Gru,
}

impl CellKind {
    /// Sums per hidden unit: the width of the layer's weights and targets is
    /// `gates() · H`.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Tanh => 1,
            CellKind::Lstm | CellKind::Gru => 4,
        }
    }

    /// The name used in task files.
    pub fn name(self) -> &'static str {
        match self {
            CellKind::Tanh => "tanh",
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
        }
    }
}

/// A layer's recurrent state at one step: `h` and, for the LSTM, its cell state
/// `c` (`B × H` each; `c` empty for the other cells). What a language model carries
/// from one chunk of its text to the next.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State<T> {
    /// Hidden state.
    pub h: Vec<T>,
    /// Cell state (LSTM).
    pub c: Vec<T>,
}

impl<T: Float> State<T> {
    /// The zero state of `count` sequences of `h` units.
    pub fn zeros(cell: CellKind, count: usize, h: usize) -> Self {
        State {
            h: vec![T::of(0.0); count * h],
            c: if cell == CellKind::Lstm {
                vec![T::of(0.0); count * h]
            } else {
                Vec::new()
            },
        }
    }
}

/// What a pass of a cell over a sequence keeps for its backward pass; every buffer
/// is time-major, row `t·B + s`.
#[derive(Clone, Debug)]
pub struct Trace<T> {
    /// The states `h_t`, `(L·B) × H`.
    pub h: Vec<T>,
    /// Gate activations `(L·B) × G·H` (LSTM, GRU); empty for tanh, whose `h` is enough.
    pub gates: Vec<T>,
    /// Cell states `c_t`, `(L·B) × H` (LSTM); empty for tanh.
    pub c: Vec<T>,
    /// The state before the first step, when not zero.
    pub start: Option<State<T>>,
}

impl<T: Float> Trace<T> {
    /// The state after the last step, of `count` sequences of `h` units.
    pub fn end(&self, count: usize, h: usize) -> State<T> {
        let last = |buf: &[T]| buf[buf.len().saturating_sub(count * h)..].to_vec();
        State {
            h: last(&self.h),
            c: last(&self.c),
        }
    }
}

/// Runs `cell` over sequences of `len` steps for `count` sequences and `h` units.
///
/// `sums` (`(L·B) × G·H`) holds each step's sums except the recurrent part, which is
/// added from `w_h` (`H × G·H`) and the previous state (`h₋₁ = 0`). Without `w_h` the
/// sums are taken as complete: the optimistic stand-in pass, where targets are the
/// sums. `start` replaces the zero initial state where given (a carried state).
pub fn forward<T: Float>(
    cell: CellKind,
    sums: &[T],
    w_h: Option<&[T]>,
    start: Option<&State<T>>,
    (len, count, h): (usize, usize, usize),
) -> Trace<T> {
    let g = cell.gates() * h;
    let zero = T::of(0.0);
    let mut trace = Trace {
        h: vec![zero; len * count * h],
        gates: if cell == CellKind::Tanh {
            Vec::new()
        } else {
            vec![zero; len * count * g]
        },
        c: if cell == CellKind::Lstm {
            vec![zero; len * count * h]
        } else {
            Vec::new()
        },
        start: start.cloned(),
    };
    let h0 = start.map(|s| s.h.as_slice());
    let c0 = start.map(|s| s.c.as_slice()).filter(|c| !c.is_empty());
    let (hs, gates, cs) = (
        SharedMut(trace.h.as_mut_ptr()),
        SharedMut(trace.gates.as_mut_ptr()),
        SharedMut(trace.c.as_mut_ptr()),
    );
    row_chunks(count).into_par_iter().for_each(|(r0, r1)| {
        let m = r1 - r0;
        let mut pre = vec![zero; m * g];
        let zeros = vec![zero; m * h];
        for t in 0..len {
            let row = t * count + r0;
            pre.copy_from_slice(&sums[row * g..(row + m) * g]);
            // SAFETY: this thread alone touches rows r0..r1 of every step, and step
            // t−1's rows (read) are not step t's (written).
            let prev = |buf: SharedMut<T>, width: usize| -> &[T] {
                if t == 0 {
                    &zeros
                } else {
                    unsafe {
                        std::slice::from_raw_parts(buf.ptr().add((row - count) * width), m * width)
                    }
                }
            };
            match (w_h, t, h0) {
                (Some(w), 0, Some(h0)) => gemm_acc(&mut pre, &h0[r0 * h..r1 * h], w, m, h, g),
                (Some(w), 1.., _) => gemm_acc(&mut pre, prev(hs, h), w, m, h, g),
                _ => {}
            }
            let h_out = unsafe { std::slice::from_raw_parts_mut(hs.ptr().add(row * h), m * h) };
            match cell {
                CellKind::Tanh => tanh::step(&pre, h_out),
                CellKind::Lstm => {
                    let gates_out =
                        unsafe { std::slice::from_raw_parts_mut(gates.ptr().add(row * g), m * g) };
                    let c_out =
                        unsafe { std::slice::from_raw_parts_mut(cs.ptr().add(row * h), m * h) };
                    let c_prev = match (t, c0) {
                        (0, Some(c0)) => &c0[r0 * h..r1 * h],
                        _ => prev(cs, h),
                    };
                    lstm::step(&pre, c_prev, gates_out, c_out, h_out, h);
                }
                CellKind::Gru => {
                    let gates_out =
                        unsafe { std::slice::from_raw_parts_mut(gates.ptr().add(row * g), m * g) };
                    let h_prev = match (t, h0) {
                        (0, Some(h0)) => &h0[r0 * h..r1 * h],
                        _ => prev(hs, h),
                    };
                    gru::step(&pre, h_prev, gates_out, h_out, h);
                }
            }
        }
    });
    trace
}

/// Backpropagation through time: from `∂L/∂h_t` for every step (`(L·B) × H`),
/// returns `∂L/∂sums` (`(L·B) × G·H`), carrying gradients back through `w_h` (if
/// any) and through the cell state.
pub fn backward<T: Float>(
    cell: CellKind,
    trace: &Trace<T>,
    grad_h: &[T],
    w_h: Option<&[T]>,
    (len, count, h): (usize, usize, usize),
) -> Vec<T> {
    let g = cell.gates() * h;
    let zero = T::of(0.0);
    let mut out = vec![zero; len * count * g];
    let out_ptr = SharedMut(out.as_mut_ptr());
    row_chunks(count).into_par_iter().for_each(|(r0, r1)| {
        let m = r1 - r0;
        let mut grad = vec![zero; m * h];
        let mut carry = vec![zero; m * h];
        let zeros = vec![zero; m * h];
        for t in (0..len).rev() {
            let row = t * count + r0;
            grad.copy_from_slice(&grad_h[row * h..(row + m) * h]);
            if let (Some(w), true) = (w_h, t + 1 < len) {
                // SAFETY: as in `forward`; step t+1's rows were written before.
                let next = unsafe {
                    std::slice::from_raw_parts(out_ptr.ptr().add((row + count) * g), m * g)
                };
                gemm_acc_bt(&mut grad, next, w, m, g, h);
            }
            let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.ptr().add(row * g), m * g) };
            match cell {
                CellKind::Tanh => tanh::step_backward(&trace.h[row * h..(row + m) * h], &grad, dst),
                CellKind::Lstm => {
                    let c_prev = match (t, &trace.start) {
                        (0, Some(s)) => &s.c[r0 * h..r1 * h],
                        (0, None) => &zeros[..],
                        _ => &trace.c[(row - count) * h..(row - count + m) * h],
                    };
                    lstm::step_backward(
                        &trace.gates[row * g..(row + m) * g],
                        &trace.c[row * h..(row + m) * h],
                        c_prev,
                        &grad,
                        &mut carry,
                        dst,
                        h,
                    );
                }
                CellKind::Gru => {
                    let h_prev = match (t, &trace.start) {
                        (0, Some(s)) => &s.h[r0 * h..r1 * h],
                        (0, None) => &zeros[..],
                        _ => &trace.h[(row - count) * h..(row - count + m) * h],
                    };
                    gru::step_backward(
                        &trace.gates[row * g..(row + m) * g],
                        h_prev,
                        &grad,
                        &mut carry,
                        dst,
                        h,
                    );
                }
            }
        }
    });
    out
}

/// A contiguous view of a float storage, as the element type `T`.
pub(crate) fn slice<'a, T: candle_core::WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
) -> Result<&'a [T]> {
    let Some((start, end)) = l.contiguous_offsets() else {
        bail!("fused cell op: inputs must be contiguous");
    };
    Ok(&s.as_slice::<T>()?[start..end])
}

/// Rows `[r0, r1)` of a batch of `rows`, split for the threads.
pub(crate) fn row_chunks(rows: usize) -> Vec<(usize, usize)> {
    // Each thread runs the whole time loop over its own sequences, so threads never
    // wait on each other; below a few dozen rows the split costs more than it saves.
    let chunks = rayon::current_num_threads().min(rows.div_ceil(32)).max(1);
    (0..chunks)
        .map(|c| (rows * c / chunks, rows * (c + 1) / chunks))
        .collect()
}

/// A raw pointer that threads may share because each writes disjoint rows.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(pub *mut T);
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(crate) fn ptr(self) -> *mut T {
        self.0
    }
}
