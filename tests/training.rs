//! Short runs learn, in both spaces, and the same seed gives the same numbers.

use tsrnn::train::Trainer;
use tsrnn::train::config::TaskFile;

fn run(fields: serde_json::Value) -> tsrnn::train::Metrics {
    let file: TaskFile = serde_json::from_value(fields).unwrap();
    let mut trainer = Trainer::new(&file.resolve().unwrap()).unwrap();
    trainer.run(|_| Ok(())).unwrap()
}

#[test]
fn target_space_learns_delay_recall() {
    let last = run(serde_json::json!({
        "task": "delay-recall", "delay": 5, "seq_len": 25, "train_size": 100,
        "test_size": 200, "iterations": 150, "eval_every": 50, "seed": 3,
    }));
    assert!(
        last.test_accuracy > 0.9,
        "test accuracy {}",
        last.test_accuracy
    );
}

#[test]
fn weight_space_learns_delay_recall() {
    let last = run(serde_json::json!({
        "task": "delay-recall", "delay": 2, "seq_len": 20, "train_size": 100,
        "test_size": 200, "iterations": 400, "eval_every": 100, "seed": 3,
        "space": "weight", "lr": 0.01,
    }));
    assert!(
        last.test_accuracy > 0.8,
        "test accuracy {}",
        last.test_accuracy
    );
}

#[test]
fn minibatches_and_a_smaller_realisation_batch_learn_too() {
    let last = run(serde_json::json!({
        "task": "xor", "delay": 2, "seq_len": 20, "train_size": 200, "batch": 50,
        "rbs": 40, "rsl": 12, "test_size": 200, "iterations": 300, "eval_every": 100, "seed": 1,
    }));
    assert!(
        last.test_accuracy > 0.8,
        "test accuracy {}",
        last.test_accuracy
    );
}

#[test]
fn a_seed_fixes_every_number() {
    let fields = serde_json::json!({
        "task": "bit-adder", "delay": 3, "seq_len": 15, "train_size": 50,
        "test_size": 50, "batch": 25, "iterations": 20, "eval_every": 20, "seed": 9,
    });
    let (a, b) = (run(fields.clone()), run(fields));
    assert_eq!(
        (a.train_loss, a.test_loss, a.test_accuracy),
        (b.train_loss, b.test_loss, b.test_accuracy)
    );
}

#[test]
fn a_three_layer_stack_realises_and_trains() {
    for space in ["target", "weight"] {
        let last = run(serde_json::json!({
            "task": "delay-recall", "delay": 3, "seq_len": 20, "train_size": 100, "test_size": 200,
            "layers": [8, 8, 8], "iterations": 200, "eval_every": 100, "seed": 2, "space": space,
            "lr": 0.01,
        }));
        assert!(
            last.test_accuracy > 0.9,
            "{space}: test accuracy {}",
            last.test_accuracy
        );
    }
}

#[test]
fn gated_cells_learn_in_both_spaces() {
    for (cell, space) in [
        ("lstm", "target"),
        ("lstm", "weight"),
        ("gru", "target"),
        ("gru", "weight"),
    ] {
        let last = run(serde_json::json!({
            "task": "delay-recall", "delay": 4, "seq_len": 20, "train_size": 100, "test_size": 200,
            "cell": cell, "hidden": 6, "iterations": 300, "eval_every": 100, "seed": 2, "space": space,
            "lr": 0.01,
        }));
        assert!(
            last.test_accuracy > 0.9,
            "{space}: test accuracy {}",
            last.test_accuracy
        );
    }
}
