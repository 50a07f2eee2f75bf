//! Checkpoints: round trip, resume equivalence, atomicity, bad input, and a bounded
//! randomised search over the readers.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use tsrnn::train::checkpoint::{self, CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE};
use tsrnn::train::config::TaskFile;
use tsrnn::train::{Metrics, Outcome, RunOptions, Trainer};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tsrnn-ckpt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn trainer(space: &str, iterations: usize) -> Trainer {
    let file: TaskFile = serde_json::from_value(serde_json::json!({
        "task": "delay-recall", "delay": 3, "seq_len": 14, "train_size": 60, "test_size": 40,
        "batch": 20, "rbs": 30, "iterations": iterations, "eval_every": 5, "seed": 2, "space": space,
    }))
    .unwrap();
    Trainer::new(&file.resolve().unwrap()).unwrap()
}

fn bits(t: &candle_core::Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn run(trainer: &mut Trainer, dir: Option<&Path>) -> Metrics {
    let options = RunOptions {
        checkpoint: dir.map(Path::to_path_buf),
        ..Default::default()
    };
    match trainer.run_with(&options, |_| Ok(())).unwrap() {
        Outcome::Finished(m) => m,
        Outcome::Interrupted(_) => unreachable!(),
    }
}

#[test]
fn a_checkpoint_round_trips_bit_for_bit() {
    for space in ["target", "weight"] {
        let dir = scratch(&format!("roundtrip-{space}"));
        let mut t = trainer(space, 7);
        run(&mut t, None);
        t.save(&dir).unwrap();
        let saved = checkpoint::read(&dir).unwrap();
        let (config, model, optimizer) = t.checkpoint_parts().unwrap();
        assert_eq!(saved.config.iteration, 7);
        assert_eq!(saved.config.task, config.task);
        for (name, tensor) in model.iter().chain(&optimizer) {
            let file = if name.starts_with("adam.") {
                &saved.optimizer
            } else {
                &saved.model
            };
            assert_eq!(bits(&file[name]), bits(tensor), "{name}");
        }
        assert_eq!(saved.model.len(), model.len());
        if space == "target" {
            for name in [
                "targets.layer.0",
                "targets.output",
                "realisation.inputs",
                "weights.layer.0",
                "weights.output",
            ] {
                assert!(saved.model.contains_key(name), "{name} missing");
            }
        }
    }
}

#[test]
fn resuming_gives_the_uninterrupted_run() {
    for space in ["target", "weight"] {
        let dir = scratch(&format!("resume-{space}"));
        let mut whole = trainer(space, 23);
        let straight = run(&mut whole, None);

        let mut first = trainer(space, 9);
        run(&mut first, Some(&dir));
        drop(first);
        let mut resumed = Trainer::resume(&dir, Some(23)).unwrap();
        assert_eq!(resumed.iteration(), 9);
        let end = run(&mut resumed, Some(&dir));

        assert_eq!(
            (end.train_loss, end.test_loss),
            (straight.train_loss, straight.test_loss),
            "{space}"
        );
        assert_eq!(
            (end.train_accuracy, end.test_accuracy),
            (straight.train_accuracy, straight.test_accuracy)
        );
        for (a, b) in whole
            .model()
            .parameters()
            .iter()
            .zip(resumed.model().parameters())
        {
            assert_eq!(bits(a.as_tensor()), bits(b.as_tensor()));
        }
        // The metrics file holds each evaluation once, in order.
        let text = std::fs::read_to_string(dir.join(checkpoint::METRICS_FILE)).unwrap();
        let iterations: Vec<usize> = text
            .lines()
            .map(|l| serde_json::from_str::<Metrics>(l).unwrap().iteration)
            .collect();
        assert_eq!(iterations, vec![0, 5, 9, 10, 15, 20, 23]);
    }
}

#[test]
fn a_save_interrupted_at_any_point_leaves_a_whole_checkpoint() {
    let mut t = trainer("target", 4);
    run(&mut t, None);
    let dir = scratch("atomic");
    t.save(&dir).unwrap();
    let mut later = trainer("target", 8);
    run(&mut later, None);
    let (config, model, optimizer) = later.checkpoint_parts().unwrap();
    let mut outcomes = Vec::new();
    for fail_after in 0..10 {
        t.save(&dir).unwrap();
        let attempt = checkpoint::write_with_failure(
            &dir,
            &config,
            &model,
            &optimizer,
            None,
            Some(fail_after),
        );
        // Whatever the point of failure, the directory reads back whole: the old
        // checkpoint, or the new one when the failure came after the commit point.
        let saved = checkpoint::read(&dir).unwrap();
        assert!([4, 8].contains(&saved.config.iteration));
        assert!(Trainer::resume(&dir, None).is_ok());
        outcomes.push((attempt.is_ok(), saved.config.iteration));
    }
    assert_eq!(outcomes.first(), Some(&(false, 4)));
    assert!(
        outcomes.contains(&(false, 8)),
        "no failure point after the commit: {outcomes:?}"
    );
    assert_eq!(outcomes.last(), Some(&(true, 8)));
}

fn saved(name: &str) -> PathBuf {
    let dir = scratch(name);
    let mut t = trainer("target", 3);
    run(&mut t, Some(&dir));
    dir
}

fn expect_error(dir: &Path, needles: &[&str]) {
    let err = match Trainer::resume(dir, None) {
        Ok(_) => panic!("{} was accepted", dir.display()),
        Err(e) => format!("{e:#}"),
    };
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
}

#[test]
fn bad_checkpoints_are_refused_with_the_file_named() {
    expect_error(
        Path::new("/no/such/checkpoint"),
        &["/no/such/checkpoint", "no such checkpoint"],
    );

    let dir = saved("truncated");
    let model = dir.join(MODEL_FILE);
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    expect_error(&dir, &[MODEL_FILE, "do not match the hash"]);

    let dir = saved("flipped");
    let optimizer = dir.join(OPTIMIZER_FILE);
    let mut bytes = std::fs::read(&optimizer).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x40;
    std::fs::write(&optimizer, bytes).unwrap();
    expect_error(&dir, &[OPTIMIZER_FILE, "do not match the hash"]);

    let edit = |name: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let dir = saved(name);
        let path = dir.join(CONFIG_FILE);
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut value);
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        dir
    };
    let dir = edit("unknown", &|v| v["colour"] = "blue".into());
    expect_error(&dir, &[CONFIG_FILE, "unknown field `colour`"]);
    let dir = edit("missing", &|v| {
        v.as_object_mut().unwrap().remove("data_sha256");
    });
    expect_error(&dir, &[CONFIG_FILE, "missing field `data_sha256`"]);
    let dir = edit("format", &|v| v["format"] = "tsrnn-checkpoint/0".into());
    expect_error(&dir, &[CONFIG_FILE, "format"]);
    let dir = edit("invalid-task", &|v| v["task"]["rsl"] = 99.into());
    expect_error(&dir, &[CONFIG_FILE, "rsl (99) must not exceed seq_len"]);
    // Another network's tensors behind a consistent config: refused by shape.
    let dir = edit("other-shape", &|v| {
        v["task"]["layers"] = serde_json::json!([9])
    });
    expect_error(&dir, &["targets.layer.0", "has shape"]);
    // Another cell or depth: refused by the tensors it would need.
    let dir = edit("other-cell", &|v| v["task"]["cell"] = "lstm".into());
    expect_error(&dir, &["targets.layer.0", "has shape"]);
    let dir = edit("other-depth", &|v| {
        let layers = v["task"]["layers"].clone();
        v["task"]["layers"] = serde_json::json!([layers[0], layers[0]]);
    });
    expect_error(&dir, &["no tensor `targets.layer.1`"]);
    // Another data set (another seed) behind the same tensors: refused by hash.
    let dir = edit("other-data", &|v| v["task"]["seed"] = 5.into());
    expect_error(&dir, &["data this checkpoint was trained on differs"]);
    // A bad file never replaces a good one: the corrupt directory is left as it was.
    let dir = saved("untouched");
    let before = std::fs::read(dir.join(MODEL_FILE)).unwrap();
    std::fs::write(dir.join(CONFIG_FILE), b"{").unwrap();
    expect_error(&dir, &[CONFIG_FILE]);
    assert_eq!(std::fs::read(dir.join(MODEL_FILE)).unwrap(), before);
}

/// Random truncations, bit flips and splices of real checkpoint files: the readers
/// return an error or a value, and never panic.
#[test]
fn the_readers_survive_random_corruption() {
    let dir = saved("fuzz");
    let config = std::fs::read(dir.join(CONFIG_FILE)).unwrap();
    let model = std::fs::read(dir.join(MODEL_FILE)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mutate = |bytes: &[u8], rng: &mut ChaCha8Rng| -> Vec<u8> {
        let mut b = bytes.to_vec();
        match rng.random_range(0..4) {
            0 => b.truncate(rng.random_range(0..b.len())),
            1 => {
                for _ in 0..rng.random_range(1..8) {
                    let i = rng.random_range(0..b.len());
                    b[i] ^= 1 << rng.random_range(0..8);
                }
            }
            2 => {
                let i = rng.random_range(0..b.len());
                b.insert(i, rng.random());
            }
            _ => {
                // Corrupt the safetensors header length or a JSON token near the start.
                let i = rng.random_range(0..b.len().min(64));
                b[i] = rng.random();
            }
        }
        b
    };
    let mut accepted = 0;
    for _ in 0..400 {
        accepted += usize::from(checkpoint::parse_config(&mutate(&config, &mut rng)).is_ok());
        let _ = checkpoint::parse_tensors(&mutate(&model, &mut rng));
    }
    assert!(accepted < 400, "the corruptions never reached the parser");
}
