//! Recurrent cells: how a layer's pre-activation sums become its state.
//!
//! A cell is used three ways with one implementation: the weight-space forward
//! pass, the target-space forward pass, and the realisation pass over the fixed
//! realisation batch. Each cell is a fused candle operation over the whole
//! sequence (one kernel call per unroll, analytic backward pass through time),
//! with a slow op-by-op version kept as the oracle the tests compare it with.

pub mod tanh;

use candle_core::{CpuStorage, Layout, Result, bail};

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

/// Rows `[r0, r1)` of a batch of `rows`, split for `chunks` threads.
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
