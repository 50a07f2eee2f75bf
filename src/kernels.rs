//! Small numeric kernels on plain slices: a vectorisable `tanh` and a row-major
//! matrix product through faer. The fused recurrent operations are built on these.

use faer::{Accum, MatMut, MatRef, Par};

/// Element types the kernels run on (`f32` for training, `f64` for gradient checks).
pub trait Float: faer::traits::RealField + Copy + Send + Sync + 'static {
    /// `tanh` (the vectorisable approximation in f32).
    fn tanh(self) -> Self;
    /// `eˣ`.
    fn exp(self) -> Self;
    /// `ln x`.
    fn ln(self) -> Self;
    /// Converts from `f64`.
    fn of(x: f64) -> Self;
    /// Converts to `f64`.
    fn to_f64(self) -> f64;

    /// `tanh` of every element, in place.
    fn tanh_in_place(xs: &mut [Self]) {
        for x in xs {
            *x = x.tanh();
        }
    }
    /// The logistic function `1 / (1 + e⁻ˣ)`, written through `tanh` so that it
    /// vectorises as `tanh` does.
    fn sigmoid(self) -> Self {
        let half = Self::of(0.5);
        half * (half * self).tanh() + half
    }
}

impl Float for f32 {
    fn tanh(self) -> f32 {
        fast_tanh(self)
    }
    fn exp(self) -> f32 {
        f32::exp(self)
    }
    fn ln(self) -> f32 {
        f32::ln(self)
    }
    fn of(x: f64) -> f32 {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    // f64 is the precision of the gradient checks: the exact functions.
    fn tanh(self) -> f64 {
        f64::tanh(self)
    }
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    fn ln(self) -> f64 {
        f64::ln(self)
    }
    fn of(x: f64) -> f64 {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// `tanh` as a 13/6 rational function (the approximation Eigen uses for `float`),
/// within a few ulp of `f32::tanh`.
///
/// It is branch-free, so loops over it vectorise; `f32::tanh` calls libm per element
/// and costs about ten times as much, which dominates a small recurrent network.
#[inline(always)]
pub fn fast_tanh(x: f32) -> f32 {
    // Beyond this bound the rational function leaves [-1, 1]; tanh is ±1 in f32 there.
    const BOUND: f32 = 7.905_311;
    let x = x.clamp(-BOUND, BOUND);
    let x2 = x * x;
    let mut p = -2.760_768_5e-16_f32;
    p = p * x2 + 2.000_188e-13;
    p = p * x2 + -8.604_672e-11;
    p = p * x2 + 5.122_297e-8;
    p = p * x2 + 1.485_722_4e-5;
    p = p * x2 + 6.372_619_3e-4;
    p = p * x2 + 4.893_524_6e-3;
    let p = p * x;
    let mut q = 1.198_258_4e-6_f32;
    q = q * x2 + 1.185_347_1e-4;
    q = q * x2 + 2.268_434_6e-3;
    q = q * x2 + 4.893_525e-3;
    p / q
}

/// `dst (m×n) += a (m×k) · b (k×n)`, all row-major and contiguous, on this thread.
pub fn gemm_acc<T: Float>(dst: &mut [T], a: &[T], b: &[T], m: usize, k: usize, n: usize) {
    let mut dst = MatMut::from_row_major_slice_mut(dst, m, n);
    let a = MatRef::from_row_major_slice(a, m, k);
    let b = MatRef::from_row_major_slice(b, k, n);
    faer::linalg::matmul::matmul(dst.as_mut(), Accum::Add, a, b, T::of(1.0), Par::Seq);
}

/// `dst (m×n) += a (m×k) · bᵀ` where `b` is `n×k`, all row-major and contiguous.
pub fn gemm_acc_bt<T: Float>(dst: &mut [T], a: &[T], b: &[T], m: usize, k: usize, n: usize) {
    let mut dst = MatMut::from_row_major_slice_mut(dst, m, n);
    let a = MatRef::from_row_major_slice(a, m, k);
    let b = MatRef::from_row_major_slice(b, n, k).transpose();
    faer::linalg::matmul::matmul(dst.as_mut(), Accum::Add, a, b, T::of(1.0), Par::Seq);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_matches_libm() {
        let mut worst = 0.0f32;
        for i in -20_000..=20_000 {
            let x = i as f32 * 1e-3;
            worst = worst.max((fast_tanh(x) - x.tanh()).abs());
        }
        assert!(worst < 1e-6, "worst error {worst}");
        assert_eq!(fast_tanh(50.0), 1.0);
        assert_eq!(fast_tanh(-50.0), -1.0);
        assert!(fast_tanh(f32::NAN).is_nan());
    }

    #[test]
    fn gemm_matches_naive() {
        let (m, k, n) = (5, 3, 4);
        let a: Vec<f64> = (0..m * k).map(|i| i as f64 * 0.5 - 2.0).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64).sin()).collect();
        let mut c = vec![1.0; m * n];
        gemm_acc(&mut c, &a, &b, m, k, n);
        let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c2 = vec![1.0; m * n];
        gemm_acc_bt(&mut c2, &a, &bt, m, k, n);
        for i in 0..m {
            for j in 0..n {
                let want = 1.0 + (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum::<f64>();
                assert!((c[i * n + j] - want).abs() < 1e-12);
                assert!((c2[i * n + j] - want).abs() < 1e-12);
            }
        }
    }
}
