//! The method's pieces against closed forms, finite differences and the op-by-op
//! oracle.

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tsrnn::cells::CellKind;
use tsrnn::cells::tanh::{unroll, unroll_reference};
use tsrnn::fused::Shape;
use tsrnn::model::Model;
use tsrnn::solve::ridge_solve;
use tsrnn::target::{Realisation, TargetConfig, TargetRnn};
use tsrnn::train::loss_and_accuracy;
use tsrnn::weight::WeightRnn;

fn random(rng: &mut ChaCha8Rng, shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Gauss–Jordan elimination: the slow, obviously correct inverse.
fn inverse(m: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = m.len();
    let mut a: Vec<Vec<f64>> = m
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut r = row.clone();
            r.extend((0..n).map(|j| if i == j { 1.0 } else { 0.0 }));
            r
        })
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .unwrap();
        a.swap(col, pivot);
        let p = a[col][col];
        a[col].iter_mut().for_each(|v| *v /= p);
        for row in 0..n {
            if row != col {
                let f = a[row][col];
                let pivot_row = a[col].clone();
                a[row]
                    .iter_mut()
                    .zip(&pivot_row)
                    .for_each(|(v, p)| *v -= f * p);
            }
        }
    }
    a.into_iter().map(|r| r[n..].to_vec()).collect()
}

#[test]
fn ridge_solve_equals_the_closed_form() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (n, k, m, lambda) = (9, 4, 3, 0.3);
    let a = random(&mut rng, &[n, k], DType::F64);
    let t = random(&mut rng, &[n, m], DType::F64);
    let w = values(&ridge_solve(&a, &t, lambda).unwrap());
    let (av, tv) = (values(&a), values(&t));
    let gram: Vec<Vec<f64>> = (0..k)
        .map(|i| {
            (0..k)
                .map(|j| {
                    (0..n).map(|r| av[r * k + i] * av[r * k + j]).sum::<f64>()
                        + if i == j { lambda } else { 0.0 }
                })
                .collect()
        })
        .collect();
    let inv = inverse(&gram);
    for i in 0..k {
        for j in 0..m {
            let want: f64 = (0..k)
                .map(|l| inv[i][l] * (0..n).map(|r| av[r * k + l] * tv[r * m + j]).sum::<f64>())
                .sum();
            assert!(
                (w[i * m + j] - want).abs() < 1e-12,
                "W[{i},{j}] = {} vs {want}",
                w[i * m + j]
            );
        }
    }
}

#[test]
fn ridge_solve_recovers_weights_that_meet_their_targets() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let a = random(&mut rng, &[40, 5], DType::F64);
    let truth = random(&mut rng, &[5, 3], DType::F64);
    let t = a.matmul(&truth).unwrap();
    let w = values(&ridge_solve(&a, &t, 1e-10).unwrap());
    for (got, want) in w.iter().zip(values(&truth)) {
        assert!((got - want).abs() < 1e-8, "{got} vs {want}");
    }
}

#[test]
fn ridge_solve_gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (n, k, m, lambda) = (7, 3, 2, 0.1);
    let a = Var::from_tensor(&random(&mut rng, &[n, k], DType::F64)).unwrap();
    let t = Var::from_tensor(&random(&mut rng, &[n, m], DType::F64)).unwrap();
    let weights = random(&mut rng, &[k, m], DType::F64);
    // A scalar loss with a different weight on every entry of W.
    let loss = |a: &Tensor, t: &Tensor| -> Tensor {
        (ridge_solve(a, t, lambda).unwrap() * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let grads = loss(a.as_tensor(), t.as_tensor()).backward().unwrap();
    for var in [&a, &t] {
        let analytic = values(grads.get(var).unwrap());
        let base = values(var.as_tensor());
        for i in 0..base.len() {
            let eps = 1e-6;
            let probe = |delta: f64| -> f64 {
                let mut v = base.clone();
                v[i] += delta;
                let moved = Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap();
                let (a, t) = if std::ptr::eq(var, &a) {
                    (moved, t.as_tensor().clone())
                } else {
                    (a.as_tensor().clone(), moved)
                };
                loss(&a, &t).to_scalar::<f64>().unwrap()
            };
            let numeric = (probe(eps) - probe(-eps)) / (2.0 * eps);
            assert!(
                (analytic[i] - numeric).abs() < 1e-7 * (1.0 + numeric.abs()),
                "entry {i}: {} vs {numeric}",
                analytic[i]
            );
        }
    }
}

#[test]
fn ridge_solve_rejects_a_system_that_is_not_positive_definite() {
    let a = Tensor::zeros((5, 3), DType::F64, &Device::Cpu).unwrap();
    let t = Tensor::ones((5, 2), DType::F64, &Device::Cpu).unwrap();
    let err = ridge_solve(&a, &t, 0.0).unwrap_err().to_string();
    assert!(err.contains("not positive definite"), "{err}");
}

#[test]
fn fused_unroll_matches_the_op_by_op_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (l, b, h) = (6, 70, 5); // b > 32 so the batch is split across threads
    let p = Var::from_tensor(&random(&mut rng, &[l, b, h], DType::F64)).unwrap();
    let w = Var::from_tensor(&random(&mut rng, &[h, h], DType::F64)).unwrap();
    let h0 = Var::from_tensor(&random(&mut rng, &[b, h], DType::F64)).unwrap();
    let weights = random(&mut rng, &[l, b, h], DType::F64);
    let fused = unroll(&p, &w, &h0).unwrap();
    let reference = unroll_reference(&p, &w, &h0).unwrap();
    for (x, y) in values(&fused).iter().zip(values(&reference)) {
        assert!((x - y).abs() < 1e-12);
    }
    let g1 = (fused.clone() * &weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g2 = (reference.clone() * &weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for var in [&p, &w, &h0] {
        for (x, y) in values(g1.get(var).unwrap())
            .iter()
            .zip(values(g2.get(var).unwrap()))
        {
            assert!((x - y).abs() < 1e-10, "{x} vs {y}");
        }
    }
    // The f32 kernel (rational tanh) agrees to f32 precision.
    let p32 = p.to_dtype(DType::F32).unwrap();
    let f32_states = unroll(
        &p32,
        &w.to_dtype(DType::F32).unwrap(),
        &h0.to_dtype(DType::F32).unwrap(),
    )
    .unwrap();
    for (x, y) in values(&f32_states).iter().zip(values(&reference)) {
        assert!((x - y).abs() < 1e-5);
    }
}

fn bits(rng: &mut ChaCha8Rng, l: usize, b: usize) -> Tensor {
    let data: Vec<f32> = (0..l * b).map(|_| rng.random_range(0..2) as f32).collect();
    Tensor::from_vec(data, (l, b, 1), &Device::Cpu).unwrap()
}

fn config(lambda: f64, realisation: Realisation) -> TargetConfig {
    TargetConfig {
        shape: Shape {
            n_in: 1,
            layers: vec![6],
            classes: 2,
            cell: CellKind::Tanh,
        },
        lambda,
        target_std: 1.0,
        realisation,
        output_weights: false,
    }
}

/// Mean absolute gap between the sums the realised network produces on X̄ and its
/// targets, per layer.
fn target_gaps(net: &TargetRnn) -> (f64, f64) {
    let sums = net.realised_sums().unwrap();
    let (s1, s2) = (&sums[0], &sums[1]);
    let (t1, t2) = (&net.targets()[0], &net.targets()[1]);
    let gap = |s: &Tensor, t: &Tensor| {
        let d = values(&(s - t).unwrap());
        d.iter().map(|v| v.abs()).sum::<f64>() / d.len() as f64
    };
    (gap(s1, t1.as_tensor()), gap(s2, t2.as_tensor()))
}

#[test]
fn initial_projection_makes_the_targets_reachable() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let inputs = bits(&mut rng, 12, 40);
    for lambda in [1e-3, 0.1] {
        let projected =
            TargetRnn::new(&inputs, config(lambda, Realisation::Sequential), &mut rng).unwrap();
        let (gap1, gap2) = target_gaps(&projected);
        // Met up to the ridge's shrinkage: the recurrent layer within λ on average;
        // the output layer, whose solve sees the states of the re-realised layer, close.
        assert!(
            gap1 < lambda,
            "λ = {lambda}: recurrent targets missed by {gap1} on average"
        );
        assert!(
            gap2 < 0.02,
            "λ = {lambda}: output targets missed by {gap2} on average"
        );
    }
    // Random targets, not projected, are far out of reach: the check above can fail.
    let draw = |shape: &[usize], rng: &mut ChaCha8Rng| {
        Var::from_tensor(&random(rng, shape, DType::F32).affine(2.0, 0.0).unwrap()).unwrap()
    };
    let unprojected = TargetRnn::from_targets(
        &inputs,
        vec![draw(&[12, 40, 6], &mut rng), draw(&[12, 40, 2], &mut rng)],
        config(1e-3, Realisation::Sequential),
    )
    .unwrap();
    let (gap1, gap2) = target_gaps(&unprojected);
    assert!(gap1 > 0.5 && gap2 > 0.5, "{gap1} {gap2}");
}

/// The fused analytic gradients equal candle autograd's through the op-by-op graph.
fn assert_fused_matches_autograd(model: &dyn Model, inputs: &Tensor, labels: &Tensor, from: usize) {
    let fused = model.loss_and_gradients(inputs, labels, from).unwrap();
    let logits = model.logits(inputs, from).unwrap();
    let (loss, _) = loss_and_accuracy(&logits, labels).unwrap();
    assert!((fused.loss - loss.to_scalar::<f32>().unwrap() as f64).abs() < 1e-5);
    let grads = loss.backward().unwrap();
    for (var, fused_grad) in model.parameters().iter().zip(&fused.grads) {
        let reference = values(grads.get(var).unwrap());
        let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0);
        for (x, y) in fused_grad.iter().zip(&reference) {
            assert!(
                (*x as f64 - y).abs() < 2e-3 * scale,
                "{x} vs {y} (scale {scale})"
            );
        }
    }
}

fn labels(rng: &mut ChaCha8Rng, scored: usize, b: usize) -> Tensor {
    let data: Vec<u32> = (0..scored * b).map(|_| rng.random_range(0..2)).collect();
    Tensor::from_vec(data, (scored, b), &Device::Cpu).unwrap()
}

#[test]
fn target_space_gradients_match_autograd() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (l, b, from) = (10, 48, 3);
    let inputs = bits(&mut rng, l, b);
    let y = labels(&mut rng, l - from, b);
    for realisation in [Realisation::Sequential, Realisation::Optimistic] {
        let net = TargetRnn::new(&inputs, config(0.1, realisation), &mut rng).unwrap();
        // Shared: the minibatch is the realisation batch itself.
        assert_fused_matches_autograd(&net, &inputs, &y, from);
        // Separate: another batch, of another size and length.
        let other = bits(&mut rng, l + 4, 20);
        let other_y = labels(&mut rng, l + 4 - from, 20);
        assert_fused_matches_autograd(&net, &other, &other_y, from);
        // A copy of the realisation inputs takes the separate path to the same result.
        let copy = inputs.copy().unwrap();
        let shared = net.loss_and_gradients(&inputs, &y, from).unwrap();
        let separate = net.loss_and_gradients(&copy, &y, from).unwrap();
        assert!((shared.loss - separate.loss).abs() < 1e-6);
        for (x, z) in shared
            .grads
            .iter()
            .flatten()
            .zip(separate.grads.iter().flatten())
        {
            assert!((x - z).abs() < 1e-4);
        }
    }
}

#[test]
fn weight_space_gradients_match_autograd() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let shape = Shape {
        n_in: 1,
        layers: vec![6],
        classes: 2,
        cell: CellKind::Tanh,
    };
    let net = WeightRnn::new(&shape, &mut rng, &Device::Cpu).unwrap();
    let inputs = bits(&mut rng, 9, 40);
    let y = labels(&mut rng, 7, 40);
    assert_fused_matches_autograd(&net, &inputs, &y, 2);
}
