//! Task labels against slow references written from the definitions.

use tsrnn::tasks::{SequenceSet, TaskKind, generate};

fn set(kind: TaskKind, delay: usize, len: usize, count: usize) -> SequenceSet {
    generate(
        kind.build(delay, len).expect("a generated kind").as_ref(),
        count,
        42,
    )
}

/// Input vector of sequence `n` at step `t`.
fn input(s: &SequenceSet, n: usize, t: usize) -> &[f32] {
    &s.inputs[(t * s.count + n) * s.n_in..][..s.n_in]
}

fn label(s: &SequenceSet, n: usize, t: usize) -> u32 {
    s.labels[(t - s.first_scored) * s.count + n]
}

fn bit(s: &SequenceSet, n: usize, t: usize) -> u64 {
    input(s, n, t)[0] as u64
}

fn symbol(s: &SequenceSet, n: usize, t: usize) -> usize {
    input(s, n, t)
        .iter()
        .position(|&v| v == 1.0)
        .expect("one-hot")
}

#[test]
fn delay_recall_labels_are_the_delayed_bits() {
    let s = set(TaskKind::DelayRecall, 7, 30, 50);
    assert_eq!((s.first_scored, s.classes, s.n_in), (7, 2, 1));
    for n in 0..s.count {
        for t in 7..30 {
            assert_eq!(label(&s, n, t) as u64, bit(&s, n, t - 7));
        }
    }
}

#[test]
fn xor_labels() {
    let s = set(TaskKind::Xor, 5, 25, 50);
    for n in 0..s.count {
        for t in 5..25 {
            assert_eq!(
                label(&s, n, t) as u64,
                (bit(&s, n, t - 5) + bit(&s, n, t)) % 2
            );
        }
    }
}

#[test]
fn bit_adder_labels_are_the_bits_of_the_integer_sum() {
    let (d, len) = (9, 9 + 60);
    let s = set(TaskKind::BitAdder, d, len, 50);
    for n in 0..s.count {
        // The two addends as integers, lowest bit first from step d.
        let a: u128 = (d..len)
            .map(|t| (bit(&s, n, t - d) as u128) << (t - d))
            .sum();
        let b: u128 = (d..len).map(|t| (bit(&s, n, t) as u128) << (t - d)).sum();
        let sum = a + b;
        for t in d..len {
            assert_eq!(
                label(&s, n, t) as u128,
                (sum >> (t - d)) & 1,
                "sequence {n}, step {t}"
            );
        }
    }
}

#[test]
fn copy_task_recalls_the_first_ten_symbols_after_the_delimiter() {
    let delay = 15;
    let s = set(TaskKind::Copy, delay, delay + 20, 30);
    assert_eq!(s.len, delay + 20);
    for n in 0..s.count {
        let data: Vec<usize> = (0..10).map(|t| symbol(&s, n, t)).collect();
        assert!(data.iter().all(|&x| (1..=8).contains(&x)));
        for t in 10..s.len {
            let want = if t == 10 + delay - 1 { 9 } else { 0 };
            assert_eq!(symbol(&s, n, t), want);
        }
        let recalled: Vec<usize> = (s.len - 10..s.len)
            .map(|t| label(&s, n, t) as usize)
            .collect();
        assert_eq!(recalled, data);
    }
}

#[test]
fn temporal_order_labels_the_order_of_the_two_markers() {
    let s = set(TaskKind::TemporalOrder, 0, 100, 200);
    let mut seen = [0; 4];
    for n in 0..s.count {
        let markers: Vec<(usize, usize)> = (0..100)
            .map(|t| (t, symbol(&s, n, t)))
            .filter(|&(_, x)| x == 4 || x == 5)
            .collect();
        assert_eq!(markers.len(), 2);
        assert!((10..=20).contains(&markers[0].0) && (50..=60).contains(&markers[1].0));
        let class = 2 * (markers[0].1 - 4) + (markers[1].1 - 4);
        assert_eq!(label(&s, n, 99) as usize, class);
        seen[class] += 1;
        assert_eq!(symbol(&s, n, 0), 6);
        assert_eq!(symbol(&s, n, 99), 7);
    }
    assert!(seen.iter().all(|&c| c > 20), "classes {seen:?}");
}

#[test]
fn the_same_seed_gives_the_same_set() {
    let task = TaskKind::DelayRecall
        .build(5, 20)
        .expect("a generated kind");
    let a = generate(task.as_ref(), 10, 3);
    let b = generate(task.as_ref(), 10, 3);
    let c = generate(task.as_ref(), 10, 4);
    assert_eq!(a.inputs, b.inputs);
    assert_eq!(a.labels, b.labels);
    assert_ne!(a.inputs, c.inputs);
}
