//! The tanh cell: `h_t = tanh(p_t + h_{t-1} W_h)`, with `p_t = b + x_t W_x` computed
//! for all steps at once by the caller (it does not depend on the recurrence).

use super::{CellKind, Trace, slice};
use crate::kernels::Float;
use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail,
};
use rayon::prelude::*;

/// Unrolls the cell over a sequence: `p` is `(L, B, H)` (time-major input sums),
/// `w_h` is `(H, H)`, `h0` is `(B, H)`. Returns the states `(L, B, H)`.
///
/// Differentiable with respect to all three inputs; the backward pass is analytic
/// backpropagation through time in one kernel call.
pub fn unroll(p: &Tensor, w_h: &Tensor, h0: &Tensor) -> Result<Tensor> {
    p.contiguous()?
        .apply_op3(&w_h.contiguous()?, &h0.contiguous()?, Unroll)
}

/// [`unroll`] written op by op with candle's own operations: slow, obviously right,
/// and the oracle the fused operation is tested against.
pub fn unroll_reference(p: &Tensor, w_h: &Tensor, h0: &Tensor) -> Result<Tensor> {
    let mut h = h0.clone();
    let mut states = Vec::with_capacity(p.dim(0)?);
    for t in 0..p.dim(0)? {
        h = (p.get(t)? + h.matmul(w_h)?)?.tanh()?;
        states.push(h.clone());
    }
    Tensor::stack(&states, 0)
}

/// `tanh` of every element, with a vectorised kernel in f32 (candle's own `tanh`
/// is about ten times slower, and the targets' activations are large tensors).
pub fn activation(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Activation)
}

struct Activation;

impl CustomOp1 for Activation {
    fn name(&self) -> &'static str {
        "tanh-fast"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(map_tanh(slice::<f32>(s, l)?)),
            CpuStorage::F64(_) => CpuStorage::F64(map_tanh(slice::<f64>(s, l)?)),
            other => bail!("tanh: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            y.apply_op2_no_bwd(&grad.contiguous()?, &ActivationGrad)?,
        ))
    }
}

fn map_tanh<T: Float>(xs: &[T]) -> Vec<T> {
    let mut out = xs.to_vec();
    out.par_chunks_mut(1 << 14).for_each(T::tanh_in_place);
    out
}

/// `grad · (1 − y²)`, the derivative of tanh through its output `y`.
struct ActivationGrad;

impl CustomOp2 for ActivationGrad {
    fn name(&self) -> &'static str {
        "tanh-fast-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn go<T: Float>(y: &[T], g: &[T]) -> Vec<T> {
            let one = T::of(1.0);
            y.iter().zip(g).map(|(&y, &g)| g * (one - y * y)).collect()
        }
        let out = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(go(slice(s1, l1)?, slice(s2, l2)?)),
            CpuStorage::F64(_) => CpuStorage::F64(go(slice(s1, l1)?, slice(s2, l2)?)),
            other => bail!("tanh grad: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// The fused forward unroll (see [`unroll`]).
struct Unroll;

impl CustomOp3 for Unroll {
    fn name(&self) -> &'static str {
        "tanh-unroll"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (l, b, h) = l1.shape().dims3()?;
        if l2.shape().dims2()? != (h, h) || l3.shape().dims2()? != (b, h) {
            bail!(
                "tanh-unroll: sums {:?}, recurrent weights {:?} and initial state {:?} disagree",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let out = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(unroll_kernel(
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
                (l, b, h),
            )),
            CpuStorage::F64(_) => CpuStorage::F64(unroll_kernel(
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
                (l, b, h),
            )),
            other => bail!("tanh-unroll: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _p: &Tensor,
        w_h: &Tensor,
        h0: &Tensor,
        states: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (l, b, h) = states.dims3()?;
        // ∂L/∂s_t for every step, by the backward recurrence in one kernel call.
        let grad_sums = states.apply_op3_no_bwd(&grad.contiguous()?, w_h, &Bptt)?;
        // Everything else is one large matrix product per input.
        let prev = if l == 1 {
            h0.unsqueeze(0)?
        } else {
            Tensor::cat(&[&h0.unsqueeze(0)?, &states.narrow(0, 0, l - 1)?], 0)?
        };
        let grad_w_h = prev
            .reshape((l * b, h))?
            .t()?
            .matmul(&grad_sums.reshape((l * b, h))?)?;
        let grad_h0 = grad_sums.get(0)?.matmul(&w_h.t()?)?;
        Ok((Some(grad_sums), Some(grad_w_h), Some(grad_h0)))
    }
}

fn unroll_kernel<T: Float>(p: &[T], w_h: &[T], h0: &[T], dims: (usize, usize, usize)) -> Vec<T> {
    let start = super::State {
        h: h0.to_vec(),
        c: Vec::new(),
    };
    super::forward(CellKind::Tanh, p, Some(w_h), Some(&start), dims).h
}

/// Backpropagation through time: from the states and `∂L/∂h_t`, computes
/// `∂L/∂s_t = (∂L/∂h_t + ∂L/∂s_{t+1} W_hᵀ) ⊙ (1 − h_t²)` for every step.
struct Bptt;

impl CustomOp3 for Bptt {
    fn name(&self) -> &'static str {
        "tanh-bptt"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = l1.shape().dims3()?;
        let out = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(bptt_kernel(
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
                dims,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(bptt_kernel(
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
                dims,
            )),
            other => bail!("tanh-bptt: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, l1.shape().clone()))
    }
}

fn bptt_kernel<T: Float>(
    states: &[T],
    grad: &[T],
    w_h: &[T],
    dims: (usize, usize, usize),
) -> Vec<T> {
    let trace = Trace {
        h: states.to_vec(),
        gates: Vec::new(),
        c: Vec::new(),
        start: None,
    };
    super::backward(CellKind::Tanh, &trace, grad, Some(w_h), dims)
}

/// One step: `h = tanh(s)` for a block of rows.
pub fn step<T: Float>(sums: &[T], h: &mut [T]) {
    h.copy_from_slice(sums);
    T::tanh_in_place(h);
}

/// One step back: `∂L/∂s = ∂L/∂h · (1 − h²)`.
pub fn step_backward<T: Float>(h: &[T], grad: &[T], out: &mut [T]) {
    let one = T::of(1.0);
    for ((d, &g), &y) in out.iter_mut().zip(grad).zip(h) {
        *d = g * (one - y * y);
    }
}
