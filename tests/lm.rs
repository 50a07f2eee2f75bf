//! Language modelling: perplexity and bits per byte on known cases, windows with
//! carried state, fine-tuning from a checkpoint, resuming mid-epoch, generation.

mod common;

use common::tsrnn;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use tsrnn::data::Dataset;
use tsrnn::fused::Shape;
use tsrnn::report::Perplexity;
use tsrnn::text::generate::{Sampler, sample};
use tsrnn::text::lm;
use tsrnn::text::tokenizer::{TextTokenizer, TokenizerKind};
use tsrnn::train::config::TaskFile;
use tsrnn::train::{self, Metrics, Trainer};

fn scratch(name: &str) -> PathBuf {
    common::scratch("lm", name)
}

/// A text with structure a small network can learn: words from a tiny grammar.
fn synthetic_text(dir: &Path, words: usize, seed: u64) -> String {
    let subjects = ["the cat", "a dog", "my friend"];
    let verbs = ["sees", "likes", "finds"];
    let objects = ["the sun.", "a tree.", "the sea."];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut text = String::new();
    for _ in 0..words / 4 {
        text.push_str(subjects[rng.random_range(0..3)]);
        text.push(' ');
        text.push_str(verbs[rng.random_range(0..3)]);
        text.push(' ');
        text.push_str(objects[rng.random_range(0..3)]);
        text.push('\n');
    }
    let path = dir.join("text.txt");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn task(corpus: &str, space: &str, epochs: usize) -> serde_json::Value {
    serde_json::json!({
        "task": "lm", "corpus": corpus, "tokenizer": "char", "embed": 8, "hidden": 24,
        "seq_len": 20, "batch": 8, "rbs": 8, "rsl": 20, "lr": 0.01, "epochs": epochs,
        "seed": 2, "space": space,
    })
}

fn trainer(fields: serde_json::Value) -> Trainer {
    let file: TaskFile = serde_json::from_value(fields).unwrap();
    Trainer::new(&file.resolve().unwrap()).unwrap()
}

fn rows(t: &mut Trainer) -> Vec<Metrics> {
    let mut rows = Vec::new();
    t.run(|m| {
        rows.push(m.clone());
        Ok(())
    })
    .unwrap();
    rows
}

/// A network whose output layer is zero predicts every token with probability
/// 1/V: its perplexity is V, and its bits per byte log2(V) × tokens / bytes.
#[test]
fn uniform_outputs_give_perplexity_v_and_known_bits_per_byte() {
    let text = "héllo wörld\nhello world\n"; // 24 characters, 26 bytes
    let tokenizer = TextTokenizer::train(TokenizerKind::Char, 100, &[text]).unwrap();
    let v = tokenizer.vocab_size();
    let dir = scratch("uniform");
    let path = dir.join("t.txt");
    std::fs::write(&path, text).unwrap();
    let stream = lm::read_stream(path.to_str().unwrap(), &tokenizer).unwrap();
    assert_eq!((stream.ids.len(), stream.bytes), (24, 26));
    let shape = Shape {
        n_in: 3,
        layers: vec![4],
        classes: v,
        cell: tsrnn::cells::CellKind::Tanh,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut weights: Vec<Vec<f32>> = shape
        .weight_shapes()
        .iter()
        .map(|&(r, c)| (0..r * c).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect();
    weights
        .last_mut()
        .unwrap()
        .iter_mut()
        .for_each(|w| *w = 0.0);
    let table: Vec<f32> = (0..v * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
    let streams = Dataset::streams(&stream.ids, 2);
    let (nll, _) = train::evaluate(&weights, Some((&table, 3)), &streams, &shape, Some(5)).unwrap();
    let report = Perplexity::new(
        dir.clone(),
        "t".into(),
        0,
        (nll, 0.0),
        streams.labels.len(),
        (stream.ids.len(), stream.bytes),
        1.0,
    );
    assert!(
        (report.perplexity - v as f64).abs() < 1e-4 * v as f64,
        "{}",
        report.perplexity
    );
    let bpb = (v as f64).log2() * 24.0 / 26.0;
    assert!(
        (report.bits_per_byte - bpb).abs() < 1e-5,
        "{} vs {bpb}",
        report.bits_per_byte
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn streams_are_contiguous_and_labelled_with_the_next_token() {
    let ids: Vec<u32> = (0..11).collect();
    let set = Dataset::streams(&ids, 2);
    // Two streams of 5 steps: 0..5 predicting 1..6, and 5..10 predicting 6..11.
    assert_eq!((set.len, set.count), (5, 2));
    assert_eq!(
        set.inputs,
        tsrnn::data::Inputs::Tokens(vec![0, 5, 1, 6, 2, 7, 3, 8, 4, 9])
    );
    assert_eq!(set.labels, vec![1, 6, 2, 7, 3, 8, 4, 9, 5, 10]);
    let w = set.window(3, 5);
    assert_eq!(w.labels, vec![4, 9, 5, 10]);
}

#[test]
fn evaluating_in_windows_equals_one_pass() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for cell in [
        tsrnn::cells::CellKind::Tanh,
        tsrnn::cells::CellKind::Lstm,
        tsrnn::cells::CellKind::Gru,
    ] {
        let shape = Shape {
            n_in: 3,
            layers: vec![5, 4],
            classes: 7,
            cell,
        };
        let weights: Vec<Vec<f32>> = shape
            .weight_shapes()
            .iter()
            .map(|&(r, c)| (0..r * c).map(|_| rng.random_range(-0.8..0.8)).collect())
            .collect();
        let table: Vec<f32> = (0..7 * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
        let ids: Vec<u32> = (0..200).map(|_| rng.random_range(0..7)).collect();
        let streams = Dataset::streams(&ids, 4);
        let whole = train::evaluate(&weights, Some((&table, 3)), &streams, &shape, None).unwrap();
        let windowed =
            train::evaluate(&weights, Some((&table, 3)), &streams, &shape, Some(7)).unwrap();
        assert!(
            (whole.0 - windowed.0).abs() < 1e-6,
            "{cell:?}: {whole:?} vs {windowed:?}"
        );
        assert_eq!(whole.1, windowed.1);
    }
}

#[test]
fn a_language_model_learns_in_both_spaces_and_resumes_mid_epoch_exactly() {
    let dir = scratch("learn");
    let corpus = synthetic_text(&dir, 2000, 1);
    for space in ["target", "weight"] {
        let mut fields = task(&corpus, space, 4);
        fields["eval_every"] = 10.into();
        // Some windows start from zero state: the draws too must resume exactly.
        fields["state_reset"] = 0.1.into();
        let mut whole = trainer(fields.clone());
        let first = whole.evaluate().unwrap();
        let all = rows(&mut whole);
        let last = all.last().unwrap();
        assert!(
            last.test_loss < first.test_loss - 1.0,
            "{space}: {} -> {}",
            first.test_loss,
            last.test_loss
        );
        let ppl = last.val_perplexity.unwrap();
        assert!((ppl - last.test_loss.exp()).abs() < 1e-9);
        assert!(last.val_bits_per_byte.unwrap() > 0.0 && last.tokens_per_s.unwrap() > 0.0);
        // Stopped after 30 iterations (mid-epoch, a state carried), saved, resumed.
        let per_epoch = whole.iterations_per_epoch();
        assert!(30 % per_epoch != 0, "{per_epoch} windows an epoch");
        let ckpt = dir.join(space);
        let mut part = trainer(fields.clone());
        while part.iteration() < 30 {
            part.step().unwrap();
        }
        part.save(&ckpt).unwrap();
        let mut resumed = Trainer::resume(&ckpt, None).unwrap();
        let rest = rows(&mut resumed);
        let key = |m: &Metrics| (m.iteration, m.train_loss, m.test_loss);
        let expected: Vec<_> = all.iter().filter(|m| m.iteration > 30).map(key).collect();
        let got: Vec<_> = rest.iter().filter(|m| m.iteration > 30).map(key).collect();
        assert_eq!(got, expected, "{space} space");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fine_tuning_starts_from_the_checkpoints_loss() {
    let dir = scratch("init");
    let corpus = synthetic_text(&dir, 2000, 2);
    for space in ["target", "weight"] {
        let mut t = trainer(task(&corpus, space, 3));
        let trained = rows(&mut t);
        let ckpt = dir.join(space);
        t.save(&ckpt).unwrap();
        let file: TaskFile = serde_json::from_value(task(&corpus, space, 1)).unwrap();
        let config = file.resolve().unwrap();
        let tuned = Trainer::from_checkpoint(&config, &ckpt).unwrap();
        let start = tuned.evaluate().unwrap();
        let fresh = Trainer::new(&config).unwrap().evaluate().unwrap();
        let end = trained.last().unwrap();
        assert!(
            (start.test_loss - end.test_loss).abs() < 1e-5,
            "{space}: starts at {} but the checkpoint ended at {}",
            start.test_loss,
            end.test_loss
        );
        assert!(start.test_loss < fresh.test_loss - 0.5, "{space}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_incompatible_init_is_refused_naming_the_tensor() {
    let dir = scratch("incompatible");
    let corpus = synthetic_text(&dir, 400, 3);
    let mut t = trainer(task(&corpus, "target", 1));
    t.run(|_| Ok(())).unwrap();
    let ckpt = dir.join("ckpt");
    t.save(&ckpt).unwrap();
    let mut other = task(&corpus, "target", 1);
    other["hidden"] = 16.into();
    let file: TaskFile = serde_json::from_value(other).unwrap();
    let err = Trainer::from_checkpoint(&file.resolve().unwrap(), &ckpt)
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("model.safetensors") && message.contains("targets.layer.0"),
        "{message}"
    );
    let recall: TaskFile = serde_json::from_value(serde_json::json!({
        "task": "delay-recall", "delay": 2, "seq_len": 8, "train_size": 10, "test_size": 10,
    }))
    .unwrap();
    let err = Trainer::from_checkpoint(&recall.resolve().unwrap(), &ckpt)
        .err()
        .expect("refused");
    assert!(
        format!("{err:#}").contains("cannot start task delay-recall"),
        "{err:#}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn generation_is_deterministic_for_a_seed() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let shape = Shape {
        n_in: 4,
        layers: vec![6],
        classes: 9,
        cell: tsrnn::cells::CellKind::Lstm,
    };
    let weights: Vec<Vec<f32>> = shape
        .weight_shapes()
        .iter()
        .map(|&(r, c)| (0..r * c).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect();
    let table: Vec<f32> = (0..9 * 4).map(|_| rng.random_range(-1.0..1.0)).collect();
    let draw = |temperature: f64, top_k: Option<usize>, seed: u64| {
        let sampler = Sampler { temperature, top_k };
        sample(
            &weights,
            &table,
            &shape,
            &[1, 2, 3],
            30,
            &sampler,
            seed,
            |_| Ok(()),
        )
        .unwrap()
    };
    assert_eq!(draw(1.0, None, 7), draw(1.0, None, 7));
    assert_ne!(draw(1.0, None, 7), draw(1.0, None, 8));
    assert_eq!(draw(0.0, None, 7), draw(0.0, None, 8));
    assert!(draw(1.0, Some(1), 3) == draw(0.0, None, 9));
}

#[test]
fn train_eval_report_and_generate_from_the_command_line() {
    let dir = scratch("cli");
    let corpus = synthetic_text(&dir, 800, 4);
    let task_file = dir.join("lm.json");
    std::fs::write(&task_file, task(&corpus, "target", 2).to_string()).unwrap();
    let ckpt = dir.join("run");
    let out = tsrnn(&[
        "train",
        task_file.to_str().unwrap(),
        "--out",
        ckpt.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report_dir = dir.join("report");
    let out = tsrnn(&[
        "eval",
        ckpt.to_str().unwrap(),
        "--report",
        report_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report_dir.join("report.json")).unwrap()).unwrap();
    let nll = report["nll"].as_f64().unwrap();
    assert!((report["perplexity"].as_f64().unwrap() - nll.exp()).abs() < 1e-9);
    let run = tsrnn::report::load_run(&ckpt).unwrap();
    let last = run.rows.last().unwrap();
    assert!(
        (nll - last.test_loss).abs() < 1e-9,
        "{nll} vs {}",
        last.test_loss
    );
    assert!(
        std::fs::read_to_string(report_dir.join("report.md"))
            .unwrap()
            .contains("perplexity")
    );
    assert!(report_dir.join("loss-vs-iteration.svg").exists());
    let generate = |seed: &str| {
        let out = tsrnn(&[
            "generate",
            ckpt.to_str().unwrap(),
            "--prompt",
            "the ",
            "--tokens",
            "40",
            "--seed",
            seed,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let a = generate("1");
    assert!(a.starts_with("the "), "{a}");
    assert_eq!(a, generate("1"));
    // Another corpus, and an init of a new run from this one.
    let other = dir.join("other.txt");
    std::fs::write(&other, "a dog likes the sea.\n".repeat(50)).unwrap();
    let out = tsrnn(&[
        "eval",
        ckpt.to_str().unwrap(),
        "--corpus",
        other.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tsrnn(&[
        "train",
        task_file.to_str().unwrap(),
        "--init",
        ckpt.to_str().unwrap(),
        "--out",
        dir.join("tuned").to_str().unwrap(),
        "--set",
        &format!("corpus={}", other.display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--init` from a language model to a classifier: the encoder (embedding,
/// recurrent targets, realisation inputs) and the tokenizer carry over, the
/// output layer is fresh, and the classifier trains.
#[test]
fn a_language_models_encoder_starts_a_classifier() {
    let dir = scratch("encoder");
    let text = synthetic_text(&dir, 800, 6);
    let mut lm_run = trainer(task(&text, "target", 2));
    lm_run.run(|_| Ok(())).unwrap();
    let ckpt = dir.join("lm");
    lm_run.save(&ckpt).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut lines = String::new();
    for _ in 0..300 {
        let (animal, label) = [("cat", "feline"), ("dog", "canine")][rng.random_range(0..2)];
        let place = ["the sun", "a tree", "the sea"][rng.random_range(0..3)];
        lines.push_str(&format!(
            "{{\"text\": \"the {animal} sees {place}.\", \"label\": \"{label}\"}}\n"
        ));
    }
    let corpus = dir.join("labelled.jsonl");
    std::fs::write(&corpus, lines).unwrap();
    let file: TaskFile = serde_json::from_value(serde_json::json!({
        "task": "classify", "corpus": corpus, "seq_len": 24, "embed": 8, "hidden": 24,
        "batch": 8, "rbs": 8, "rsl": 20, "epochs": 3, "lr": 0.01, "seed": 1,
    }))
    .unwrap();
    let mut classifier = Trainer::from_checkpoint(&file.resolve().unwrap(), &ckpt).unwrap();
    let tensor = |t: &Trainer, name: &str| -> Vec<f32> {
        let (_, model, _) = t.checkpoint_parts().unwrap();
        let (_, value) = model.into_iter().find(|(n, _)| n == name).unwrap();
        value.flatten_all().unwrap().to_vec1().unwrap()
    };
    for name in ["embedding", "targets.layer.0", "realisation.inputs"] {
        assert_eq!(tensor(&classifier, name), tensor(&lm_run, name), "{name}");
    }
    assert_eq!(
        classifier.tokenizer().unwrap().vocab_size(),
        lm_run.tokenizer().unwrap().vocab_size()
    );
    let last = classifier.run(|_| Ok(())).unwrap();
    assert!(last.test_accuracy > 0.9, "{}", last.test_accuracy);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With `state_reset` 1 every window starts from zero state: the second window's
/// loss is then that of the window alone, unlike with the state carried.
#[test]
fn state_reset_starts_windows_from_zero_state() {
    let dir = scratch("reset");
    let corpus = synthetic_text(&dir, 800, 9);
    let second_loss = |p: f64| {
        let mut fields = task(&corpus, "weight", 1);
        fields["state_reset"] = p.into();
        let mut t = trainer(fields);
        t.step().unwrap();
        t.step().unwrap()
    };
    assert_eq!(second_loss(0.0), second_loss(0.0));
    assert_ne!(second_loss(0.0), second_loss(1.0));
    let bad: Result<TaskFile, _> = serde_json::from_value(serde_json::json!({
        "task": "classify", "corpus": corpus, "state_reset": 0.5,
    }));
    let err = bad.unwrap().resolve().expect_err("refused");
    assert!(
        format!("{err:#}").contains("applies to task lm only"),
        "{err:#}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
