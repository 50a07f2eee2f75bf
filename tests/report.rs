//! Reports: files written and non-empty, with the expected series.

use tsrnn::report::{self, FILES};
use tsrnn::train::Trainer;
use tsrnn::train::config::TaskFile;

#[test]
fn a_report_overlays_runs_and_keeps_their_series() {
    let dir = std::env::temp_dir().join(format!("tsrnn-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut inputs = Vec::new();
    for space in ["target", "weight"] {
        let file: TaskFile = serde_json::from_value(serde_json::json!({
            "task": "delay-recall", "delay": 3, "seq_len": 12, "train_size": 30, "test_size": 30,
            "iterations": 20, "eval_every": 5, "space": space,
        }))
        .unwrap();
        let mut trainer = Trainer::new(&file.resolve().unwrap()).unwrap();
        let path = dir.join(format!("{space}.jsonl"));
        trainer.run(|m| tsrnn::train::append_row(&path, m)).unwrap();
        inputs.push(report::load_run(&path).unwrap());
    }
    let out = dir.join("report");
    report::write(&inputs, &out).unwrap();
    for name in FILES {
        let len = std::fs::metadata(out.join(name)).unwrap().len();
        assert!(len > 200, "{name} is {len} bytes");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["name"], "target");
    assert_eq!(runs[1]["space"], "weight");
    let iterations: Vec<u64> = runs[0]["series"]["iteration"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(iterations, vec![0, 5, 10, 15, 20]);
    assert_eq!(
        runs[1]["series"]["test_accuracy"].as_array().unwrap().len(),
        5
    );
    let svg = std::fs::read_to_string(out.join("accuracy-vs-iteration.svg")).unwrap();
    assert!(svg.contains("<svg"));
    // The legend names both runs.
    for name in ["target", "weight"] {
        assert!(
            svg.lines().any(|l| l.trim() == name),
            "{name} not in the legend"
        );
    }

    // A malformed metrics line is reported with its line number.
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"iteration\": 1}\n").unwrap();
    let err = report::load_run(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl: line 1"), "{err}");
}
