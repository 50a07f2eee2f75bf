//! Adam (Kingma & Ba, 2015), fused into one pass over each parameter.
//!
//! candle-nn's optimiser would do, but it keeps its moments private (a checkpoint
//! needs them) and runs a dozen separate elementwise passes over tensors that, for
//! targets, hold millions of elements.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Var, bail};
use std::sync::Mutex;

/// The Adam optimiser over a fixed list of parameters.
pub struct Adam {
    params: Vec<Var>,
    first: Vec<Vec<f32>>,
    second: Vec<Vec<f32>>,
    step: u64,
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
}

impl Adam {
    /// Adam with the usual constants (β₁ 0.9, β₂ 0.999, ε 1e-8).
    pub fn new(params: Vec<Var>, lr: f64) -> Self {
        let first = params.iter().map(|p| vec![0.0; p.elem_count()]).collect();
        let second = params.iter().map(|p| vec![0.0; p.elem_count()]).collect();
        Adam {
            params,
            first,
            second,
            step: 0,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// The moments, per parameter: `(first, second)`.
    pub fn moments(&self) -> (&[Vec<f32>], &[Vec<f32>]) {
        (&self.first, &self.second)
    }

    /// Restores a saved state: the step count and both moments of every parameter.
    pub fn restore(
        &mut self,
        step: u64,
        first: Vec<Vec<f32>>,
        second: Vec<Vec<f32>>,
    ) -> Result<()> {
        let sizes: Vec<usize> = self.params.iter().map(|p| p.elem_count()).collect();
        let fits = |m: &[Vec<f32>]| {
            m.len() == sizes.len() && m.iter().zip(&sizes).all(|(v, &n)| v.len() == n)
        };
        if !fits(&first) || !fits(&second) {
            bail!("adam: saved moments do not fit the parameters");
        }
        (self.step, self.first, self.second) = (step, first, second);
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every parameter from its flat gradient (`grads[i]` belongs to
    /// the `i`-th parameter).
    pub fn step(&mut self, grads: &[Vec<f32>]) -> Result<()> {
        if grads.len() != self.params.len() {
            bail!(
                "adam: {} gradients for {} parameters",
                grads.len(),
                self.params.len()
            );
        }
        self.step += 1;
        let t = self.step as i32;
        let (bc1, bc2) = (1.0 - self.beta1.powi(t), (1.0 - self.beta2.powi(t)).sqrt());
        for (((p, m), v), g) in self
            .params
            .iter()
            .zip(&mut self.first)
            .zip(&mut self.second)
            .zip(grads)
        {
            if g.len() != p.elem_count() {
                bail!(
                    "adam: a gradient of {} values for a parameter of {}",
                    g.len(),
                    p.elem_count()
                );
            }
            let op = Update {
                grad: g,
                moments: Mutex::new((std::mem::take(m), std::mem::take(v))),
                lr: (self.lr * bc2 / bc1) as f32,
                beta1: self.beta1 as f32,
                beta2: self.beta2 as f32,
                eps: (self.eps * bc2) as f32,
            };
            p.inplace_op1(&op)?;
            (*m, *v) = op.moments.into_inner().expect("moments lock");
        }
        Ok(())
    }
}

/// The in-place update of one parameter. The bias corrections are folded into the
/// step size and ε (the form of the Adam paper's section 2).
struct Update<'a> {
    grad: &'a [f32],
    moments: Mutex<(Vec<f32>, Vec<f32>)>,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
}

impl InplaceOp1 for Update<'_> {
    fn name(&self) -> &'static str {
        "adam-update"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("adam: parameters must be contiguous");
        };
        let CpuStorage::F32(p) = storage else {
            bail!("adam: parameters must be f32, not {:?}", storage.dtype());
        };
        let mut guard = self.moments.lock().expect("moments lock");
        let (m, v) = &mut *guard;
        let (b1, b2) = (self.beta1, self.beta2);
        for (((p, &g), m), v) in p[start..end].iter_mut().zip(self.grad).zip(m).zip(v) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= self.lr * *m / (v.sqrt() + self.eps);
        }
        Ok(())
    }
}
