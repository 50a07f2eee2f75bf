//! The differentiable ridge solve that realises weights from targets.
//!
//! `solve(A, T) = argmin_W ‖AW − T‖² + λ‖W‖² = (AᵀA + λI)⁻¹AᵀT`.
//!
//! The Gram products `G = AᵀA + λI` and `R = AᵀT` are ordinary candle matrix
//! products, so candle's autograd carries their gradients to `A` and `T`. Only the
//! step `W = G⁻¹R` is a custom operation ([`SpdSolve`]): a Cholesky factorisation
//! in f64 (the systems are tiny, `k × k` with `k` the layer's fan-in, but `G` can be
//! ill-conditioned down to `λ`) with the analytic backward pass
//! `∂L/∂R = G⁻¹ ∂L/∂W`, `∂L/∂G = −(∂L/∂R) Wᵀ`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, bail};
use faer::{Mat, Side, linalg::solvers::Solve};

/// The ridge solve `(AᵀA + λI)⁻¹AᵀT` for `A` of shape `n × k` and `T` of shape `n × m`.
///
/// Every column of `W` is regularised, the bias column included. Differentiable with
/// respect to `A` and `T`.
pub fn ridge_solve(a: &Tensor, t: &Tensor, lambda: f64) -> Result<Tensor> {
    let (_, k) = a.dims2()?;
    let at = a.t()?;
    let eye = (Tensor::eye(k, a.dtype(), a.device())? * lambda)?;
    let gram = (at.matmul(a)? + eye)?;
    let rhs = at.matmul(t)?;
    spd_solve(&gram, &rhs)
}

/// `G⁻¹R` for a symmetric positive definite `G` (`k × k`) and `R` (`k × m`),
/// differentiable with respect to both.
pub fn spd_solve(g: &Tensor, r: &Tensor) -> Result<Tensor> {
    g.apply_op2(r, SpdSolve)
}

/// The custom candle operation behind [`spd_solve`].
pub struct SpdSolve;

impl CustomOp2 for SpdSolve {
    fn name(&self) -> &'static str {
        "spd-solve"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (k, k2) = l1.shape().dims2()?;
        let (kr, m) = l2.shape().dims2()?;
        if k != k2 || k != kr {
            bail!("spd-solve: G is {k}×{k2} and R is {kr}×{m}; G must be square with R's rows");
        }
        let g = to_f64(s1, l1)?;
        let r = to_f64(s2, l2)?;
        if g.iter().chain(&r).any(|v| !v.is_finite()) {
            bail!("ridge solve: the normal equations hold non-finite values (NaN or infinity)");
        }
        let g = Mat::from_fn(k, k, |i, j| g[i * k + j]);
        let r = Mat::from_fn(k, m, |i, j| r[i * m + j]);
        let llt = match g.llt(Side::Lower) {
            Ok(llt) => llt,
            Err(e) => bail!(
                "ridge solve: AᵀA + λI ({k}×{k}) is not positive definite ({e:?}); λ must be > 0"
            ),
        };
        let w = llt.solve(&r);
        let out: Vec<f64> = (0..k * m).map(|i| w[(i / m, i % m)]).collect();
        let storage = match s1.dtype() {
            DType::F64 => CpuStorage::F64(out),
            DType::F32 => CpuStorage::F32(out.into_iter().map(|v| v as f32).collect()),
            other => bail!("spd-solve: unsupported dtype {other:?}"),
        };
        Ok((storage, Shape::from((k, m))))
    }

    fn bwd(
        &self,
        g: &Tensor,
        _r: &Tensor,
        w: &Tensor,
        grad_w: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_r = spd_solve(g, &grad_w.contiguous()?)?;
        let grad_g = grad_r.matmul(&w.t()?)?.neg()?;
        Ok((Some(grad_g), Some(grad_r)))
    }
}

/// A contiguous copy, in f64, of a float storage viewed through its layout.
fn to_f64(s: &CpuStorage, l: &Layout) -> Result<Vec<f64>> {
    let Some((start, end)) = l.contiguous_offsets() else {
        bail!("spd-solve: inputs must be contiguous");
    };
    Ok(match s {
        CpuStorage::F64(v) => v[start..end].to_vec(),
        CpuStorage::F32(v) => v[start..end].iter().map(|&x| x as f64).collect(),
        other => bail!("spd-solve: unsupported dtype {:?}", other.dtype()),
    })
}
