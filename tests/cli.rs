//! `tsrnn` end to end: a run writes its metrics; bad input fails with a message
//! naming the file and the field.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tsrnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tsrnn"))
        .args(args)
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tsrnn-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Runs `tsrnn train` on a task file and expects it to fail saying all of `needles`.
fn rejects(text: &[u8], extra: &[&str], needles: &[&str]) {
    let dir = scratch("bad");
    let path = write(&dir, &format!("task-{}.json", needles[0].len()), text);
    let mut args = vec!["train", path.as_str()];
    args.extend_from_slice(extra);
    let out = tsrnn(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "`{needle}` not in: {stderr}");
    }
    assert!(
        stderr.contains(&path),
        "the message does not name the file: {stderr}"
    );
}

const SMALL: &str =
    r#""task": "delay-recall", "delay": 3, "seq_len": 12, "train_size": 40, "test_size": 40"#;

#[test]
fn a_run_prints_and_appends_metrics_and_repeats_exactly() {
    let dir = scratch("run");
    let task = write(
        &dir,
        "task.json",
        format!("{{{SMALL}, \"iterations\": 20, \"eval_every\": 10}}").as_bytes(),
    );
    let metrics = dir.join("metrics.jsonl");
    let _ = std::fs::remove_file(&metrics);
    let metrics = metrics.to_str().unwrap();
    for space in ["target", "weight"] {
        let ckpt = dir.join(space);
        let _ = std::fs::remove_dir_all(&ckpt);
        let out = tsrnn(&[
            "train",
            &task,
            "--space",
            space,
            "--set",
            "seed=4",
            "--metrics",
            metrics,
            "--out",
            ckpt.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.lines().filter(|l| l.starts_with("iter")).count(),
            3,
            "{stdout}"
        );
    }
    let text = std::fs::read_to_string(metrics).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    for row in &rows {
        for field in [
            "iteration",
            "train_loss",
            "train_accuracy",
            "test_loss",
            "test_accuracy",
            "elapsed_s",
        ] {
            assert!(row[field].is_number(), "{field} missing from {row}");
        }
    }
    assert_eq!(rows[2]["iteration"], 20);
    assert_eq!(rows[3]["space"], "weight");
    // Same command, same numbers.
    let again = dir.join("again.jsonl");
    let _ = std::fs::remove_file(&again);
    let ckpt = dir.join("again");
    let _ = std::fs::remove_dir_all(&ckpt);
    let out = tsrnn(&[
        "train",
        &task,
        "--set",
        "seed=4",
        "--metrics",
        again.to_str().unwrap(),
        "--out",
        ckpt.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let again: Vec<serde_json::Value> = std::fs::read_to_string(&again)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (a, b) in again.iter().zip(&rows[..3]) {
        assert_eq!(a["test_loss"], b["test_loss"]);
        assert_eq!(a["train_accuracy"], b["train_accuracy"]);
    }
}

#[test]
fn the_shipped_task_files_resolve() {
    let tasks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks");
    let dir = scratch("shipped");
    for entry in std::fs::read_dir(tasks).unwrap() {
        let path = entry.unwrap().path();
        let config = tsrnn::train::config::load(&path, &[], None)
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        if config.task.is_text() {
            // Text tasks read ../shared/corpora, which tests never need: resolving
            // is all that is checked here; tests/classify.rs trains text tasks.
            continue;
        }
        let ckpt = dir.join(path.file_stem().unwrap());
        let _ = std::fs::remove_dir_all(&ckpt);
        let out = tsrnn(&[
            "train",
            path.to_str().unwrap(),
            "--set",
            "iterations=1",
            "--set",
            "test_size=10",
            "--out",
            ckpt.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn tasks_lists_every_kind_and_field() {
    let out = tsrnn(&["tasks"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "delay-recall",
        "xor",
        "bit-adder",
        "copy",
        "temporal-order",
        "lambda",
        "rsl",
        "eval_every",
    ] {
        assert!(text.contains(word), "{word} missing");
    }
}

#[test]
fn malformed_json_is_rejected() {
    rejects(b"{\"task\": \"delay-recall\",", &[], &["not valid JSON"]);
    rejects(b"[1, 2]", &[], &["must be a JSON object"]);
    rejects(b"{\"task\": \"delay\xff-recall\"}", &[], &["not UTF-8"]);
}

#[test]
fn unknown_fields_and_kinds_are_rejected() {
    rejects(
        format!("{{{SMALL}, \"hiden\": 4}}").as_bytes(),
        &[],
        &["unknown field `hiden`"],
    );
    rejects(
        b"{\"task\": \"recall\"}",
        &[],
        &["unknown variant `recall`"],
    );
    rejects(b"{\"delay\": 3}", &[], &["missing field `task`"]);
    rejects(
        format!("{{{SMALL}}}").as_bytes(),
        &["--set", "dela=3"],
        &["unknown field `dela`"],
    );
    rejects(
        format!("{{{SMALL}}}").as_bytes(),
        &["--set", "delay=abc"],
        &["invalid type"],
    );
}

#[test]
fn invalid_combinations_are_rejected() {
    let cases: &[(&str, &[&str])] = &[
        (
            "\"delay\": 12",
            &["delay (12) must be less than seq_len (12)"],
        ),
        ("\"hidden\": 0", &["hidden must be at least 1"]),
        ("\"train_size\": 0", &["train_size must be at least 1"]),
        ("\"lambda\": -0.1", &["lambda must be a positive number"]),
        ("\"rsl\": 13", &["rsl (13) must not exceed seq_len (12)"]),
        ("\"rbs\": 41", &["rbs (41) must not exceed train_size (40)"]),
        (
            "\"batch\": 50",
            &["batch (50) must not exceed train_size (40)"],
        ),
        ("\"lr\": 0", &["lr must be a positive number"]),
    ];
    for (field, needles) in cases {
        let text = format!("{{{SMALL}, {field}}}").replacen(
            "\"delay\": 3, ",
            "",
            usize::from(field.starts_with("\"delay\"")),
        );
        rejects(text.as_bytes(), &[], needles);
    }
    rejects(
        b"{\"task\": \"temporal-order\", \"delay\": 4}",
        &[],
        &["`delay` does not apply to task temporal-order"],
    );
}

#[test]
fn a_fresh_run_never_overwrites_a_checkpoint_and_resume_continues_it() {
    let dir = scratch("resume");
    let task = write(
        &dir,
        "task.json",
        format!("{{{SMALL}, \"iterations\": 10}}").as_bytes(),
    );
    let ckpt = dir.join("ckpt");
    let _ = std::fs::remove_dir_all(&ckpt);
    let ckpt = ckpt.to_str().unwrap();
    assert!(tsrnn(&["train", &task, "--out", ckpt]).status.success());
    let model = std::fs::read(Path::new(ckpt).join("model.safetensors")).unwrap();
    let again = tsrnn(&["train", &task, "--out", ckpt]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a checkpoint"));
    assert_eq!(
        std::fs::read(Path::new(ckpt).join("model.safetensors")).unwrap(),
        model
    );

    let resumed = tsrnn(&["train", "--resume", ckpt, "--set", "iterations=20"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(stdout.contains("iter     20"), "{stdout}");
    let bad = tsrnn(&["train", "--resume", ckpt, "--set", "delay=4"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("only `iterations`"));

    let eval = tsrnn(&["eval", ckpt, "--set", "test_size=30"]);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(json["iteration"], 20);
    assert_eq!(json["test_size"], 30);
    assert!(json["test_accuracy"].as_f64().unwrap() > 0.0);
    let best = tsrnn(&["eval", ckpt, "--best"]);
    assert!(best.status.success());

    let report = dir.join("report");
    let out = tsrnn(&["report", ckpt, "--out", report.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.join("report.md").exists() && report.join("accuracy-vs-seconds.svg").exists());
}

#[test]
fn a_missing_task_file_is_named() {
    let out = tsrnn(&["train", "no/such/task.json"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no/such/task.json") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn a_diverging_run_stops_naming_the_iteration() {
    let dir = scratch("nan");
    let task = write(
        &dir,
        "task.json",
        format!("{{{SMALL}, \"space\": \"weight\", \"lr\": 1e30}}").as_bytes(),
    );
    let ckpt = dir.join("run");
    let _ = std::fs::remove_dir_all(&ckpt);
    let out = tsrnn(&["train", &task, "--out", ckpt.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("training stopped at iteration") && stderr.contains("the loss is"),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_saves_and_says_where() {
    let dir = scratch("sigint");
    let task = write(
        &dir,
        "task.json",
        format!("{{{SMALL}, \"iterations\": 100000000}}").as_bytes(),
    );
    let ckpt = dir.join("ckpt");
    let _ = std::fs::remove_dir_all(&ckpt);
    let child = Command::new(env!("CARGO_BIN_EXE_tsrnn"))
        .args(["train", &task, "--out", ckpt.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has trained a while (its metrics file has rows past iteration 0).
    let metrics = ckpt.join("metrics.jsonl");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 3 {
        assert!(start.elapsed().as_secs() < 60, "the run never got going");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("interrupted at iteration") && stderr.contains(ckpt.to_str().unwrap()),
        "{stderr}"
    );
    let saved = tsrnn::train::checkpoint::read(&ckpt).unwrap();
    assert!(saved.config.iteration >= 10);
}
