//! Cells and stacks: the LSTM against a slow reference, the stand-in pass against
//! the actual pass, and the fused gradients of every cell and depth against
//! central finite differences in f64.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tsrnn::cells::{self, CellKind};
use tsrnn::fused::{self, Batch, Realisation, Shape};

fn uniform(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Checks `samples` random entries of every parameter's analytic gradient against
/// central differences of `loss`, to within `tol · (1 + |numeric|)`.
fn check_gradients(
    params: &mut [Vec<f64>],
    grads: &[Vec<f64>],
    loss: impl Fn(&[Vec<f64>]) -> f64,
    (samples, tol): (usize, f64),
    rng: &mut ChaCha8Rng,
    what: &str,
) {
    let eps = 1e-6;
    for p in 0..params.len() {
        for _ in 0..samples {
            let i = rng.random_range(0..params[p].len());
            let base = params[p][i];
            params[p][i] = base + eps;
            let up = loss(params);
            params[p][i] = base - eps;
            let down = loss(params);
            params[p][i] = base;
            let numeric = (up - down) / (2.0 * eps);
            assert!(
                (grads[p][i] - numeric).abs() < tol * (1.0 + numeric.abs()),
                "{what}: parameter {p}[{i}]: {} vs {numeric}",
                grads[p][i]
            );
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn lstm_matches_a_slow_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (len, count, h) = (5, 40, 3);
    let sums = uniform(&mut rng, len * count * 4 * h, 1.5);
    let w_h = uniform(&mut rng, h * 4 * h, 0.8);
    let trace = cells::forward(CellKind::Lstm, &sums, Some(&w_h), None, (len, count, h));
    for s in 0..count {
        let (mut hp, mut cp) = (vec![0.0; h], vec![0.0; h]);
        for t in 0..len {
            let row = t * count + s;
            let pre: Vec<f64> = (0..4 * h)
                .map(|k| {
                    sums[row * 4 * h + k] + (0..h).map(|u| hp[u] * w_h[u * 4 * h + k]).sum::<f64>()
                })
                .collect();
            for u in 0..h {
                let c = cp[u] * sigmoid(pre[2 * h + u] + 1.0) + sigmoid(pre[u]) * pre[h + u].tanh();
                let hv = c.tanh() * sigmoid(pre[3 * h + u]);
                assert!((trace.c[row * h + u] - c).abs() < 1e-12);
                assert!((trace.h[row * h + u] - hv).abs() < 1e-12);
                cp[u] = c;
                hp[u] = hv;
            }
        }
    }
}

#[test]
fn gru_matches_a_slow_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (len, count, h) = (5, 40, 3);
    let sums = uniform(&mut rng, len * count * 4 * h, 1.5);
    let w_h = uniform(&mut rng, h * 4 * h, 0.8);
    let trace = cells::forward(CellKind::Gru, &sums, Some(&w_h), None, (len, count, h));
    for s in 0..count {
        let mut hp = vec![0.0; h];
        for t in 0..len {
            let row = t * count + s;
            let pre: Vec<f64> = (0..4 * h)
                .map(|k| {
                    sums[row * 4 * h + k] + (0..h).map(|u| hp[u] * w_h[u * 4 * h + k]).sum::<f64>()
                })
                .collect();
            let next: Vec<f64> = (0..h)
                .map(|u| {
                    let (z, r) = (sigmoid(pre[u]), sigmoid(pre[h + u]));
                    let n = (pre[2 * h + u] + r * pre[3 * h + u]).tanh();
                    (1.0 - z) * n + z * hp[u]
                })
                .collect();
            for (got, want) in trace.h[row * h..(row + 1) * h].iter().zip(&next) {
                assert!((got - want).abs() < 1e-12);
            }
            hp = next;
        }
    }
}

#[test]
fn the_stand_in_pass_on_actual_sums_is_the_actual_pass() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (len, count, h) = (6, 7, 4);
    for cell in [CellKind::Tanh, CellKind::Lstm, CellKind::Gru] {
        let g = cell.gates() * h;
        let input_sums = uniform(&mut rng, len * count * g, 1.0);
        let w_h = uniform(&mut rng, h * g, 0.7);
        let actual = cells::forward(cell, &input_sums, Some(&w_h), None, (len, count, h));
        // The complete sums of the actual pass, recurrence included.
        let mut complete = input_sums.clone();
        for row in count..len * count {
            for k in 0..g {
                complete[row * g + k] += (0..h)
                    .map(|u| actual.h[(row - count) * h + u] * w_h[u * g + k])
                    .sum::<f64>();
            }
        }
        let stand_in = cells::forward(cell, &complete, None, None, (len, count, h));
        for (a, b) in actual.h.iter().zip(&stand_in.h) {
            assert!((a - b).abs() < 1e-12, "{cell:?}");
        }
    }
}

struct Case {
    shape: Shape,
    shared: bool,
    optimistic: bool,
    /// The output layer trained in weight space (its weights the last parameter).
    output_weights: bool,
}

fn check_target_space(case: &Case, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shape = &case.shape;
    let (rsl, rbs) = (5, 6);
    let n = rsl * rbs;
    let inputs: Vec<f64> = (0..n * shape.n_in)
        .map(|_| rng.random_range(0..2) as f64)
        .collect();
    let mut targets: Vec<Vec<f64>> = shape
        .target_widths()
        .iter()
        .map(|&w| uniform(&mut rng, n * w, 1.0))
        .collect();
    if case.output_weights {
        *targets.last_mut().unwrap() = uniform(&mut rng, (1 + shape.top()) * shape.classes, 0.8);
    }
    let real = Realisation {
        inputs: &inputs,
        rsl,
        rbs,
        lambda: 0.1,
        optimistic: case.optimistic,
        output_weights: case.output_weights,
    };
    let (len, count, from) = if case.shared {
        (rsl, rbs, 2)
    } else {
        (7, 3, 1)
    };
    let batch_inputs: Vec<f64> = if case.shared {
        inputs.clone()
    } else {
        (0..len * count * shape.n_in)
            .map(|_| rng.random_range(0..2) as f64)
            .collect()
    };
    let labels: Vec<u32> = (0..(len - from) * count)
        .map(|_| rng.random_range(0..shape.classes as u32))
        .collect();
    let batch = Batch {
        inputs: &batch_inputs,
        labels: &labels,
        len,
        count,
        first_scored: from,
        start: None,
    };
    let grads = fused::target_space(&targets, &real, &batch, case.shared, shape)
        .unwrap()
        .grads;
    let loss = |targets: &[Vec<f64>]| {
        fused::target_space(targets, &real, &batch, case.shared, shape)
            .unwrap()
            .loss
    };
    let what = format!(
        "{:?} shared {} optimistic {} output weights {}",
        shape, case.shared, case.optimistic, case.output_weights
    );
    check_gradients(&mut targets, &grads, loss, (6, 1e-6), &mut rng, &what);
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            n_in: 1,
            layers: vec![3],
            classes: 2,
            cell: CellKind::Lstm,
        },
        Shape {
            n_in: 2,
            layers: vec![3, 4],
            classes: 3,
            cell: CellKind::Tanh,
        },
        Shape {
            n_in: 1,
            layers: vec![2, 3],
            classes: 2,
            cell: CellKind::Lstm,
        },
        Shape {
            n_in: 1,
            layers: vec![3, 2, 3],
            classes: 2,
            cell: CellKind::Tanh,
        },
        Shape {
            n_in: 2,
            layers: vec![3],
            classes: 2,
            cell: CellKind::Gru,
        },
        Shape {
            n_in: 1,
            layers: vec![2, 3],
            classes: 3,
            cell: CellKind::Gru,
        },
    ]
}

#[test]
fn target_space_gradients_match_finite_differences() {
    for (k, shape) in shapes().into_iter().enumerate() {
        for (shared, optimistic, output_weights) in [
            (true, false, false),
            (false, false, false),
            (true, true, false),
            (true, false, true),
            (false, false, true),
        ] {
            check_target_space(
                &Case {
                    shape: shape.clone(),
                    shared,
                    optimistic,
                    output_weights,
                },
                k as u64,
            );
        }
    }
}

#[test]
fn weight_space_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for shape in shapes() {
        let mut weights: Vec<Vec<f64>> = shape
            .weight_shapes()
            .iter()
            .map(|&(r, c)| uniform(&mut rng, r * c, 0.8))
            .collect();
        let (len, count, from) = (6, 4, 2);
        let inputs: Vec<f64> = (0..len * count * shape.n_in)
            .map(|_| rng.random_range(0..2) as f64)
            .collect();
        let labels: Vec<u32> = (0..(len - from) * count)
            .map(|_| rng.random_range(0..shape.classes as u32))
            .collect();
        let batch = Batch {
            inputs: &inputs,
            labels: &labels,
            len,
            count,
            first_scored: from,
            start: None,
        };
        let grads = fused::weight_space(&weights, &batch, &shape).unwrap().grads;
        let loss = |w: &[Vec<f64>]| fused::weight_space(w, &batch, &shape).unwrap().loss;
        let what = format!("{shape:?}");
        check_gradients(&mut weights, &grads, loss, (8, 1e-7), &mut rng, &what);
    }
}

/// `∂L/∂inputs` of a separate minibatch (what an embedding below the network
/// receives), in both spaces, against central differences.
#[test]
fn input_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for shape in shapes() {
        let (rsl, rbs) = (4, 3);
        let targets: Vec<Vec<f64>> = shape
            .target_widths()
            .iter()
            .map(|&w| uniform(&mut rng, rsl * rbs * w, 1.0))
            .collect();
        let weights: Vec<Vec<f64>> = shape
            .weight_shapes()
            .iter()
            .map(|&(r, c)| uniform(&mut rng, r * c, 0.8))
            .collect();
        let real_inputs = uniform(&mut rng, rsl * rbs * shape.n_in, 1.0);
        let real = Realisation {
            inputs: &real_inputs,
            rsl,
            rbs,
            lambda: 0.1,
            optimistic: false,
            output_weights: false,
        };
        let (len, count, from) = (6, 2, 5);
        let mut inputs = uniform(&mut rng, len * count * shape.n_in, 1.0);
        let labels: Vec<u32> = (0..(len - from) * count)
            .map(|_| rng.random_range(0..shape.classes as u32))
            .collect();
        let run = |inputs: &[f64], target: bool| {
            let batch = Batch {
                inputs,
                labels: &labels,
                len,
                count,
                first_scored: from,
                start: None,
            };
            if target {
                fused::target_space(&targets, &real, &batch, false, &shape).unwrap()
            } else {
                fused::weight_space(&weights, &batch, &shape).unwrap()
            }
        };
        for target in [true, false] {
            let grads = run(&inputs, target).inputs.expect("a separate batch");
            assert_eq!(grads.len(), inputs.len());
            check_gradients(
                std::slice::from_mut(&mut inputs),
                &[grads],
                |x| run(&x[0], target).loss,
                (8, 1e-6),
                &mut rng,
                &format!("{shape:?} target {target}: inputs"),
            );
        }
    }
}

/// A carried state makes one long pass and a pass in short chunks the same: the
/// loss over all steps and the end state agree, for every cell and depth.
#[test]
fn chunks_with_carried_state_equal_one_long_pass() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    for shape in shapes() {
        let weights: Vec<Vec<f64>> = shape
            .weight_shapes()
            .iter()
            .map(|&(r, c)| uniform(&mut rng, r * c, 0.8))
            .collect();
        let (len, count) = (12, 3);
        let inputs = uniform(&mut rng, len * count * shape.n_in, 1.0);
        let labels: Vec<u32> = (0..len * count)
            .map(|_| rng.random_range(0..shape.classes as u32))
            .collect();
        let whole = fused::evaluate(
            &weights,
            &Batch {
                inputs: &inputs,
                labels: &labels,
                len,
                count,
                first_scored: 0,
                start: None,
            },
            &shape,
        )
        .unwrap();
        let mut state: Option<Vec<cells::State<f64>>> = None;
        let mut total = 0.0;
        for (t0, t1) in [(0, 5), (5, 6), (6, 12)] {
            let part = fused::evaluate(
                &weights,
                &Batch {
                    inputs: &inputs[t0 * count * shape.n_in..t1 * count * shape.n_in],
                    labels: &labels[t0 * count..t1 * count],
                    len: t1 - t0,
                    count,
                    first_scored: 0,
                    start: state.as_deref(),
                },
                &shape,
            )
            .unwrap();
            total += part.loss * ((t1 - t0) * count) as f64;
            state = Some(part.end);
        }
        let mean = total / (len * count) as f64;
        assert!(
            (mean - whole.loss).abs() < 1e-12,
            "{shape:?}: {mean} vs {}",
            whole.loss
        );
        for (a, b) in state.unwrap().iter().zip(&whole.end) {
            for (x, y) in a.h.iter().chain(&a.c).zip(b.h.iter().chain(&b.c)) {
                assert!((x - y).abs() < 1e-12, "{shape:?}");
            }
        }
    }
}

/// Gradients of a chunk that starts from a carried state (a constant: truncated
/// backpropagation), in both spaces, against central differences.
#[test]
fn gradients_from_a_carried_state_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    for shape in shapes() {
        let (len, count, from) = (5, 2, 0);
        let start: Vec<cells::State<f64>> = shape
            .layers
            .iter()
            .map(|&h| cells::State {
                h: uniform(&mut rng, count * h, 0.9),
                c: if shape.cell == CellKind::Lstm {
                    uniform(&mut rng, count * h, 1.5)
                } else {
                    Vec::new()
                },
            })
            .collect();
        let inputs = uniform(&mut rng, len * count * shape.n_in, 1.0);
        let labels: Vec<u32> = (0..(len - from) * count)
            .map(|_| rng.random_range(0..shape.classes as u32))
            .collect();
        let batch = Batch {
            inputs: &inputs,
            labels: &labels,
            len,
            count,
            first_scored: from,
            start: Some(&start),
        };
        let mut weights: Vec<Vec<f64>> = shape
            .weight_shapes()
            .iter()
            .map(|&(r, c)| uniform(&mut rng, r * c, 0.8))
            .collect();
        let grads = fused::weight_space(&weights, &batch, &shape).unwrap().grads;
        let loss = |w: &[Vec<f64>]| fused::weight_space(w, &batch, &shape).unwrap().loss;
        let what = format!("{shape:?} weights");
        check_gradients(&mut weights, &grads, loss, (8, 1e-7), &mut rng, &what);
        let (rsl, rbs) = (4, 3);
        let mut targets: Vec<Vec<f64>> = shape
            .target_widths()
            .iter()
            .map(|&w| uniform(&mut rng, rsl * rbs * w, 1.0))
            .collect();
        let real_inputs = uniform(&mut rng, rsl * rbs * shape.n_in, 1.0);
        let real = Realisation {
            inputs: &real_inputs,
            rsl,
            rbs,
            lambda: 0.1,
            optimistic: false,
            output_weights: false,
        };
        let grads = fused::target_space(&targets, &real, &batch, false, &shape)
            .unwrap()
            .grads;
        let loss = |t: &[Vec<f64>]| {
            fused::target_space(t, &real, &batch, false, &shape)
                .unwrap()
                .loss
        };
        let what = format!("{shape:?} targets");
        check_gradients(&mut targets, &grads, loss, (6, 1e-6), &mut rng, &what);
    }
}
