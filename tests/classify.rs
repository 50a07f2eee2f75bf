//! Text classification end to end: padding and truncation, the embedding's
//! lookup and gradient, a synthetic corpus learnt in both spaces, checkpoints of
//! text runs, and bad text-task input.

mod common;

use common::tsrnn;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use tsrnn::data::{self, Dataset, Inputs};
use tsrnn::text::classify::pad_front;
use tsrnn::text::tokenizer::TextTokenizer;
use tsrnn::train::config::TaskFile;
use tsrnn::train::{Metrics, Trainer, checkpoint};

fn scratch(name: &str) -> PathBuf {
    common::scratch("classify", name)
}

/// A corpus a bag of words separates: each text is filler words and one cue word
/// of its class, anywhere in the text, as JSON lines.
fn synthetic_corpus(dir: &Path, count: usize, seed: u64) -> String {
    let filler = [
        "the", "a", "film", "movie", "was", "it", "and", "plot", "actor", "scene", "story", "of",
        "this", "that", "with",
    ];
    let cues = [["awful", "boring", "dull"], ["great", "superb", "lovely"]];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut lines = String::new();
    for _ in 0..count {
        let label = rng.random_range(0..2usize);
        let n = rng.random_range(3..9);
        let cue_at = rng.random_range(0..n);
        let words: Vec<&str> = (0..n)
            .map(|i| {
                if i == cue_at {
                    cues[label][rng.random_range(0..3)]
                } else {
                    filler[rng.random_range(0..filler.len())]
                }
            })
            .collect();
        let label = ["neg", "pos"][label];
        lines.push_str(&format!(
            "{{\"text\": \"{}.\", \"label\": \"{label}\"}}\n",
            words.join(" ")
        ));
    }
    let path = dir.join("corpus.jsonl");
    std::fs::write(&path, lines).unwrap();
    path.to_str().unwrap().to_string()
}

fn task(corpus: &str, space: &str, epochs: usize) -> serde_json::Value {
    serde_json::json!({
        "task": "classify", "corpus": corpus, "tokenizer": "word", "vocab": 40,
        "seq_len": 10, "embed": 8, "hidden": 12, "batch": 25, "rbs": 25, "rsl": 10,
        "lr": 0.01, "epochs": epochs, "seed": 4, "space": space, "test_fraction": 0.2,
    })
}

fn trainer(fields: serde_json::Value) -> Trainer {
    let file: TaskFile = serde_json::from_value(fields).unwrap();
    Trainer::new(&file.resolve().unwrap()).unwrap()
}

#[test]
fn padding_keeps_the_last_tokens_and_pads_in_front() {
    assert_eq!(pad_front(&[5, 6, 7], 5, 0), vec![0, 0, 5, 6, 7]);
    assert_eq!(pad_front(&[1, 2, 3, 4, 5, 6], 4, 0), vec![3, 4, 5, 6]);
    assert_eq!(pad_front(&[], 2, 9), vec![9, 9]);
    assert_eq!(pad_front(&[8, 9], 2, 0), vec![8, 9]);
}

#[test]
fn token_sets_are_time_major_and_labelled_at_the_last_step() {
    let set = Dataset::from_tokens(&[vec![1, 2, 3], vec![4, 5, 6]], &[1, 0], 3);
    assert_eq!(set.inputs, Inputs::Tokens(vec![1, 4, 2, 5, 3, 6]));
    assert_eq!(set.first_scored, 2);
    let picked = set.select(&[1]);
    assert_eq!(picked.inputs, Inputs::Tokens(vec![4, 5, 6]));
    assert_eq!(picked.labels, vec![0]);
}

#[test]
fn the_embedding_gradient_sums_the_rows_of_each_id() {
    let (rows, width) = (5, 3);
    let table: Vec<f32> = (0..rows * width).map(|i| i as f32).collect();
    let ids = [4u32, 1, 4, 0];
    let vectors = data::embed(&table, width, &ids);
    for (k, &id) in ids.iter().enumerate() {
        assert_eq!(
            &vectors[k * width..(k + 1) * width],
            &table[id as usize * width..(id as usize + 1) * width]
        );
    }
    // The gradient of Σ c·v over the looked-up vectors is the sum of each id's c.
    let grad_vectors: Vec<f32> = (0..ids.len() * width).map(|i| 0.5 + i as f32).collect();
    let grad = data::embed_backward(&grad_vectors, &ids, rows, width);
    let mut slow = vec![0.0f32; rows * width];
    for (k, &id) in ids.iter().enumerate() {
        for j in 0..width {
            slow[id as usize * width + j] += grad_vectors[k * width + j];
        }
    }
    assert_eq!(grad, slow);
}

#[test]
fn a_separable_corpus_is_learnt_in_both_spaces() {
    let dir = scratch("learn");
    let corpus = synthetic_corpus(&dir, 500, 1);
    for space in ["target", "weight"] {
        let mut t = trainer(task(&corpus, space, 12));
        let first = t.evaluate().unwrap();
        let last = t.run(|_| Ok(())).unwrap();
        assert!(
            last.test_accuracy >= 0.95,
            "{space} space: test accuracy {} (from {})",
            last.test_accuracy,
            first.test_accuracy
        );
        assert_eq!(last.epoch, 12.0);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_text_checkpoint_resumes_exactly_and_keeps_its_tokenizer() {
    let dir = scratch("resume");
    let corpus = synthetic_corpus(&dir, 200, 2);
    let rows = |t: &mut Trainer| {
        let mut rows: Vec<Metrics> = Vec::new();
        t.run(|m| {
            rows.push(m.clone());
            Ok(())
        })
        .unwrap();
        rows
    };
    for space in ["target", "weight"] {
        let whole = rows(&mut trainer(task(&corpus, space, 3)));
        let ckpt = dir.join(space);
        let mut first = trainer(task(&corpus, space, 1));
        rows(&mut first);
        first.save(&ckpt).unwrap();
        let saved = TextTokenizer::load(&ckpt.join("tokenizer.json").to_string_lossy()).unwrap();
        let text = "the film was great";
        assert_eq!(
            saved.encode(text).unwrap(),
            first.tokenizer().unwrap().encode(text).unwrap()
        );
        let mut resumed = Trainer::resume(&ckpt, Some(3)).unwrap();
        let rest = rows(&mut resumed);
        let strip = |m: &Metrics| (m.iteration, m.train_loss, m.test_loss, m.test_accuracy);
        assert_eq!(
            rest.iter().map(strip).collect::<Vec<_>>(),
            whole[2..].iter().map(strip).collect::<Vec<_>>(),
            "{space} space"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_with_a_corrupted_tokenizer_is_refused_naming_it() {
    let dir = scratch("corrupt");
    let corpus = synthetic_corpus(&dir, 100, 3);
    let mut t = trainer(task(&corpus, "target", 1));
    t.run(|_| Ok(())).unwrap();
    let ckpt = dir.join("ckpt");
    t.save(&ckpt).unwrap();
    let path = ckpt.join(checkpoint::TOKENIZER_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = Trainer::resume(&ckpt, None).err().expect("refused");
    let message = format!("{err:#}");
    assert!(message.contains("tokenizer.json"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_then_eval_from_the_command_line() {
    let dir = scratch("cli");
    let corpus = synthetic_corpus(&dir, 200, 5);
    let task_file = dir.join("task.json");
    std::fs::write(&task_file, task(&corpus, "target", 2).to_string()).unwrap();
    let ckpt = dir.join("run");
    let out = tsrnn(&[
        "train",
        task_file.to_str().unwrap(),
        "--out",
        ckpt.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("160 training and 40 test texts"),
        "{stdout}"
    );
    let run = tsrnn::report::load_run(&ckpt).unwrap();
    let last = run.rows.last().unwrap();
    let out = tsrnn(&["eval", ckpt.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["test_size"], 40);
    let accuracy = report["test_accuracy"].as_f64().unwrap();
    assert!(
        (accuracy - last.test_accuracy).abs() < 1e-12,
        "{accuracy} vs {}",
        last.test_accuracy
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_text_tasks_fail_naming_the_problem() {
    let dir = scratch("bad");
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            task(dir.join("missing.jsonl").to_str().unwrap(), "target", 1),
            "missing.jsonl",
        ),
        (
            serde_json::json!({"task": "classify"}),
            "missing field `corpus`",
        ),
        (
            serde_json::json!({"task": "delay-recall", "corpus": "x.txt"}),
            "field `corpus` does not apply",
        ),
        (
            serde_json::json!({"task": "classify", "corpus": "x.txt", "iterations": 5}),
            "give `epochs`",
        ),
    ];
    for (k, (fields, needle)) in cases.into_iter().enumerate() {
        let path = dir.join(format!("task{k}.json"));
        std::fs::write(&path, fields.to_string()).unwrap();
        let out = tsrnn(&[
            "train",
            path.to_str().unwrap(),
            "--out",
            dir.join(format!("o{k}")).to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {fields}");
        assert!(stderr.contains(needle), "`{needle}` not in: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // Unlabelled texts cannot be classified.
    let unlabelled = dir.join("plain.txt");
    std::fs::write(&unlabelled, "just some text\n").unwrap();
    let path = dir.join("unlabelled.json");
    std::fs::write(
        &path,
        task(unlabelled.to_str().unwrap(), "target", 1).to_string(),
    )
    .unwrap();
    let out = tsrnn(&[
        "train",
        path.to_str().unwrap(),
        "--out",
        dir.join("u").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("plain.txt"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_text_run_is_resumed_for_more_epochs_not_iterations() {
    let dir = scratch("epochs");
    let corpus = synthetic_corpus(&dir, 100, 7);
    let mut t = trainer(task(&corpus, "weight", 1));
    t.run(|_| Ok(())).unwrap();
    let ckpt = dir.join("ckpt");
    t.save(&ckpt).unwrap();
    let ckpt = ckpt.to_str().unwrap();
    let out = tsrnn(&["train", "--resume", ckpt, "--set", "iterations=9"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("only `epochs`"), "{stderr}");
    let out = tsrnn(&["train", "--resume", ckpt, "--set", "epochs=2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("epoch  2.00"));
    std::fs::remove_dir_all(&dir).unwrap();
}
