//! Reports from metrics files: a JSON summary, a Markdown table, and learning-curve
//! plots (SVG, drawn with plotters) with several runs overlaid.

use crate::train::Metrics;
use anyhow::{Context, Result, anyhow, bail};
use plotters::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One run's evaluations.
#[derive(Clone, Debug)]
pub struct Run {
    /// A name for legends and tables.
    pub name: String,
    /// Its metrics rows, in order.
    pub rows: Vec<Metrics>,
}

/// Reads a run from a checkpoint directory (its `metrics.jsonl`) or a metrics file.
pub fn load_run(path: &Path) -> Result<Run> {
    let file: PathBuf = if path.is_dir() {
        path.join(crate::train::checkpoint::METRICS_FILE)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
    let text =
        String::from_utf8(text).map_err(|_| anyhow!("{}: not UTF-8 text", file.display()))?;
    let rows = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| anyhow!("{}: line {}: {e}", file.display(), i + 1))
        })
        .collect::<Result<Vec<Metrics>>>()?;
    if rows.is_empty() {
        bail!("{}: no metrics rows", file.display());
    }
    let stem = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.with_extension("")
    };
    let name = stem
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Run { name, rows })
}

/// A run's entry in `report.json`.
#[derive(Serialize)]
struct Summary<'a> {
    name: &'a str,
    space: &'static str,
    last: &'a Metrics,
    best_test_accuracy: f64,
    /// The first evaluation at or above 99 % test accuracy: (iteration, seconds).
    first_99: Option<(usize, f64)>,
    series: Series,
}

#[derive(Serialize)]
struct Series {
    iteration: Vec<usize>,
    elapsed_s: Vec<f64>,
    train_loss: Vec<f64>,
    test_loss: Vec<f64>,
    train_accuracy: Vec<f64>,
    test_accuracy: Vec<f64>,
}

/// The files [`write`] produces, relative to its directory.
pub const FILES: [&str; 5] = [
    "report.json",
    "report.md",
    "accuracy-vs-iteration.svg",
    "accuracy-vs-seconds.svg",
    "loss-vs-iteration.svg",
];

/// Writes the report of `runs` into `out`.
pub fn write(runs: &[Run], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let summaries: Vec<Summary> = runs.iter().map(summarise).collect();
    let json = serde_json::to_vec_pretty(&serde_json::json!({ "runs": summaries }))?;
    std::fs::write(out.join(FILES[0]), json)
        .with_context(|| format!("{}: cannot write", out.display()))?;
    std::fs::write(out.join(FILES[1]), markdown(&summaries))
        .with_context(|| format!("{}: cannot write", out.display()))?;
    let accuracy = |m: &Metrics| 100.0 * m.test_accuracy;
    let iteration = |m: &Metrics| m.iteration as f64;
    let seconds = |m: &Metrics| m.elapsed_s;
    plot(
        runs,
        &out.join(FILES[2]),
        "Test accuracy",
        ("iteration", "test accuracy (%)"),
        iteration,
        accuracy,
    )?;
    plot(
        runs,
        &out.join(FILES[3]),
        "Test accuracy against training time",
        ("seconds", "test accuracy (%)"),
        seconds,
        accuracy,
    )?;
    plot(
        runs,
        &out.join(FILES[4]),
        "Test loss",
        ("iteration", "test cross-entropy (nats)"),
        iteration,
        |m| m.test_loss,
    )?;
    Ok(())
}

fn summarise(run: &Run) -> Summary<'_> {
    let rows = &run.rows;
    Summary {
        name: &run.name,
        space: rows[0].space.name(),
        last: rows.last().expect("a run has rows"),
        best_test_accuracy: rows.iter().map(|m| m.test_accuracy).fold(0.0, f64::max),
        first_99: rows
            .iter()
            .find(|m| m.test_accuracy >= 0.99)
            .map(|m| (m.iteration, m.elapsed_s)),
        series: Series {
            iteration: rows.iter().map(|m| m.iteration).collect(),
            elapsed_s: rows.iter().map(|m| m.elapsed_s).collect(),
            train_loss: rows.iter().map(|m| m.train_loss).collect(),
            test_loss: rows.iter().map(|m| m.test_loss).collect(),
            train_accuracy: rows.iter().map(|m| m.train_accuracy).collect(),
            test_accuracy: rows.iter().map(|m| m.test_accuracy).collect(),
        },
    }
}

fn markdown(summaries: &[Summary]) -> String {
    let mut md = String::from("# Training report\n\n");
    md.push_str("| run | space | iterations | seconds | ms/iteration | final test accuracy | best | first ≥ 99 % (iteration, s) |\n");
    md.push_str("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for s in summaries {
        let first = s
            .first_99
            .map_or("not reached".to_string(), |(i, t)| format!("{i}, {t:.1} s"));
        md.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.2} | {:.2} % | {:.2} % | {} |\n",
            s.name,
            s.space,
            s.last.iteration,
            s.last.elapsed_s,
            s.last.ms_per_iteration,
            100.0 * s.last.test_accuracy,
            100.0 * s.best_test_accuracy,
            first
        ));
    }
    md.push_str("\n![accuracy against iterations](accuracy-vs-iteration.svg)\n\n");
    md.push_str("![accuracy against seconds](accuracy-vs-seconds.svg)\n\n");
    md.push_str("![loss against iterations](loss-vs-iteration.svg)\n");
    md
}

/// One SVG line chart, a line per run, with a legend.
fn plot(
    runs: &[Run],
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    x: impl Fn(&Metrics) -> f64,
    y: impl Fn(&Metrics) -> f64,
) -> Result<()> {
    let points: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .map(|r| {
            r.rows
                .iter()
                .map(|m| (x(m), y(m)))
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect()
        })
        .collect();
    let all = points.iter().flatten();
    let (x_max, y_min, y_max) = all.fold(
        (0.0f64, f64::INFINITY, f64::NEG_INFINITY),
        |(a, b, c), p| (a.max(p.0), b.min(p.1), c.max(p.1)),
    );
    let (y_min, y_max) = if y_min < y_max {
        (y_min, y_max)
    } else {
        (y_min - 1.0, y_min + 1.0)
    };
    let pad = 0.05 * (y_max - y_min);
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max.max(1e-9), (y_min - pad)..(y_max + pad))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|v| format!("{v}"))
            .draw()?;
        for (i, (run, pts)) in runs.iter().zip(&points).enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))?
                .label(label(run))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow!("{}: cannot draw: {e}", path.display()))
}

/// A run's legend entry: its name, and its space where the name does not say it.
fn label(run: &Run) -> String {
    let space = run.rows[0].space.name();
    if run.name == space {
        run.name.clone()
    } else {
        format!("{} ({space})", run.name)
    }
}

/// A language model's held-out figures: what `tsrnn eval` measures on a text.
#[derive(Clone, Debug, Serialize)]
pub struct Perplexity {
    /// The checkpoint evaluated.
    pub checkpoint: PathBuf,
    /// The text: the task's held-out split, or the corpus named.
    pub corpus: String,
    /// Iterations the checkpoint was trained for.
    pub iteration: usize,
    /// Tokens predicted.
    pub tokens: usize,
    /// UTF-8 bytes of the text.
    pub bytes: usize,
    /// Mean negative log-likelihood per predicted token (nats).
    pub nll: f64,
    /// `exp(nll)`.
    pub perplexity: f64,
    /// `nll / ln 2`.
    pub bits_per_token: f64,
    /// Bits per byte of text: `bits_per_token × tokens / bytes`, comparable across
    /// tokenizers.
    pub bits_per_byte: f64,
    /// Next-token accuracy.
    pub accuracy: f64,
    /// Seconds the evaluation took.
    pub seconds: f64,
    /// Tokens evaluated per second.
    pub tokens_per_s: f64,
}

impl Perplexity {
    /// The figures of a mean loss over `tokens` predicted tokens of a text of
    /// `text_tokens` tokens and `bytes` bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        checkpoint: PathBuf,
        corpus: String,
        iteration: usize,
        (nll, accuracy): (f64, f64),
        tokens: usize,
        (text_tokens, bytes): (usize, usize),
        seconds: f64,
    ) -> Self {
        let bits_per_token = nll / std::f64::consts::LN_2;
        Perplexity {
            checkpoint,
            corpus,
            iteration,
            tokens,
            bytes,
            nll,
            perplexity: nll.exp(),
            bits_per_token,
            bits_per_byte: bits_per_token * text_tokens as f64 / bytes.max(1) as f64,
            accuracy,
            seconds,
            tokens_per_s: tokens as f64 / seconds.max(1e-9),
        }
    }
}

/// Writes a perplexity report into `out`: `report.json`, `report.md`, and, given
/// the checkpoint's run, its learning curves (held-out loss and perplexity).
pub fn write_perplexity(report: &Perplexity, run: Option<&Run>, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let json = serde_json::to_vec_pretty(report)?;
    std::fs::write(out.join(FILES[0]), json)
        .with_context(|| format!("{}: cannot write", out.display()))?;
    let r = report;
    let mut md = format!(
        "# Perplexity report\n\n`{}` (iteration {}) on `{}`\n\n\
         | tokens | bytes | nll (nats/token) | perplexity | bits/token | bits/byte | accuracy | tokens/s |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n\
         | {} | {} | {:.4} | {:.3} | {:.4} | {:.4} | {:.2} % | {:.0} |\n",
        r.checkpoint.display(),
        r.iteration,
        r.corpus,
        r.tokens,
        r.bytes,
        r.nll,
        r.perplexity,
        r.bits_per_token,
        r.bits_per_byte,
        100.0 * r.accuracy,
        r.tokens_per_s
    );
    if let Some(run) = run {
        let runs = std::slice::from_ref(run);
        plot(
            runs,
            &out.join(FILES[4]),
            "Held-out loss",
            ("iteration", "held-out cross-entropy (nats/token)"),
            |m| m.iteration as f64,
            |m| m.test_loss,
        )?;
        plot(
            runs,
            &out.join("perplexity-vs-seconds.svg"),
            "Held-out perplexity against training time",
            ("seconds", "perplexity"),
            |m| m.elapsed_s,
            |m| m.test_loss.exp(),
        )?;
        md.push_str("\n![loss against iterations](loss-vs-iteration.svg)\n\n");
        md.push_str("![perplexity against seconds](perplexity-vs-seconds.svg)\n");
    }
    std::fs::write(out.join(FILES[1]), md)
        .with_context(|| format!("{}: cannot write", out.display()))
}
