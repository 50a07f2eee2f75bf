//! The `tsrnn` command line.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tsrnn::model::weight_names;
use tsrnn::tasks::{self, TaskKind};
use tsrnn::text::generate::{self, Sampler};
use tsrnn::text::tokenizer::TextTokenizer;
use tsrnn::text::{classify, lm};
use tsrnn::train::checkpoint::{self, BEST_DIR, MODEL_FILE};
use tsrnn::train::config::{self, FIELDS, RunConfig, Space};
use tsrnn::train::{self as training, Dataset, Event, Metrics, Outcome, RunOptions, Trainer};

// Training allocates and frees tensors of megabytes every iteration; the system
// allocator returns them to the kernel and pays a page fault per page to get them
// back, which cost more than the arithmetic.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Recurrent networks trained in target space (Fairbank, Samothrakis & Citi, 2022).
#[derive(Parser)]
#[command(name = "tsrnn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network on a task file (or resume a checkpoint), printing one line
    /// per evaluation and saving a checkpoint directory. Ctrl-C saves and stops.
    Train {
        /// The task file (JSON), e.g. tasks/delay-recall.json; not with --resume.
        #[arg(required_unless_present = "resume", conflicts_with = "resume")]
        task: Option<PathBuf>,
        /// Continue the run saved in this checkpoint directory.
        #[arg(long, value_name = "DIR")]
        resume: Option<PathBuf>,
        /// Train in this space, overriding the task file's `space`.
        #[arg(long, value_enum, conflicts_with = "resume")]
        space: Option<Space>,
        /// Override a task field, e.g. `--set delay=40`; repeatable. With --resume
        /// only `iterations` (text tasks: `epochs`) may be changed.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Also append every evaluation to this file as a JSON line.
        #[arg(long, value_name = "FILE")]
        metrics: Option<PathBuf>,
        /// The checkpoint directory [default: checkpoints/TASK-SPACE-DATE-TIME].
        #[arg(long, value_name = "DIR", conflicts_with = "resume")]
        out: Option<PathBuf>,
        /// Save every N iterations as well as at the end.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        save_every: Option<u64>,
        /// Start from the parameters (and tokenizer) of this checkpoint: fine-tune a
        /// language model on another corpus, or start a classifier from one.
        #[arg(long, value_name = "DIR", conflicts_with = "resume")]
        init: Option<PathBuf>,
        /// The tokenizer of a text task (same as `--set tokenizer=SPEC`): word, char,
        /// bpe, a tokenizer.json path, or hf:NAME.
        #[arg(long, value_name = "SPEC", conflicts_with_all = ["resume", "init"])]
        tokenizer: Option<String>,
    },
    /// Evaluate a checkpoint on its task's test set (re-created from the seed) or on
    /// another one chosen with --set, using the saved realised weights; prints JSON.
    Eval {
        /// The checkpoint directory.
        checkpoint: PathBuf,
        /// Use the checkpoint's best evaluation (its best/ directory).
        #[arg(long)]
        best: bool,
        /// Change the test set, e.g. `--set test_size=5000 --set seed=7` or a longer
        /// `seq_len`; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Also write the JSON to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// A language model: evaluate on this whole corpus instead of the task's
        /// held-out text.
        #[arg(long, value_name = "PATH")]
        corpus: Option<String>,
        /// A language model: write report.json, report.md and learning curves here.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
    },
    /// Generate text from a language-model checkpoint, streaming it to stdout.
    Generate {
        /// The checkpoint directory.
        checkpoint: PathBuf,
        /// The text to continue.
        #[arg(long, default_value = "\n")]
        prompt: String,
        /// Tokens to generate.
        #[arg(long, default_value_t = 200)]
        tokens: usize,
        /// Softmax temperature (0: always the most likely token).
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Sample only among the K most likely tokens.
        #[arg(long, value_name = "K")]
        top_k: Option<usize>,
        /// Seed of the sampling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Write a report (report.json, report.md, SVG learning curves) of one or more
    /// runs: checkpoint directories or metrics files.
    Report {
        /// Checkpoint directories or metrics (.jsonl) files.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The report directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Train a task in target space and in weight space with the same seed and data,
    /// and write the comparison report.
    Compare {
        /// The task file (JSON).
        task: PathBuf,
        /// Override a task field; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// The report directory [default: reports/compare-TASK-DATE-TIME]; the two
        /// runs' checkpoints go to checkpoints/ under the same name.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// List the task kinds and the task-file fields with their defaults.
    Tasks,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            task,
            resume,
            space,
            overrides,
            metrics,
            out,
            save_every,
            init,
            tokenizer,
        } => {
            let (trainer, dir) = match (task, resume) {
                (_, Some(dir)) => (resume_trainer(&dir, &overrides)?, dir),
                (Some(task), None) => {
                    let mut overrides = overrides;
                    overrides.extend(tokenizer.map(|t| format!("tokenizer={t}")));
                    let config = config::load(&task, &overrides, space)?;
                    let dir = out.unwrap_or_else(|| checkpoint::default_dir(&config));
                    let trainer = match init {
                        Some(from) => {
                            refuse_existing(&dir)?;
                            Trainer::from_checkpoint(&config, &from)?
                        }
                        None => fresh_trainer(&config, &dir)?,
                    };
                    (trainer, dir)
                }
                (None, None) => bail!("give a task file or --resume DIR"),
            };
            train(
                trainer,
                &dir,
                save_every.map(|n| n as usize),
                metrics.as_deref(),
            )
            .map(|_| ())
        }
        Command::Eval {
            checkpoint,
            best,
            overrides,
            out,
            corpus,
            report,
        } => eval(
            &checkpoint,
            best,
            &overrides,
            out.as_deref(),
            corpus.as_deref(),
            report.as_deref(),
        ),
        Command::Generate {
            checkpoint,
            prompt,
            tokens,
            temperature,
            top_k,
            seed,
        } => generate(&checkpoint, &prompt, tokens, temperature, top_k, seed),
        Command::Report { runs, out } => report(&runs, &out),
        Command::Compare {
            task,
            overrides,
            out,
        } => compare(&task, &overrides, out),
        Command::Tasks => {
            list_tasks();
            Ok(())
        }
    }
}

fn fresh_trainer(config: &RunConfig, dir: &Path) -> Result<Trainer> {
    refuse_existing(dir)?;
    Trainer::new(config)
}

/// A fresh run never writes into a directory that holds a checkpoint.
fn refuse_existing(dir: &Path) -> Result<()> {
    if dir.join(checkpoint::CONFIG_FILE).exists() {
        bail!(
            "{}: already holds a checkpoint; continue it with --resume {0} or choose another --out",
            dir.display()
        );
    }
    Ok(())
}

fn resume_trainer(dir: &Path, overrides: &[String]) -> Result<Trainer> {
    // Text tasks are counted in epochs, the others in iterations.
    let key = if checkpoint::read_config(dir)?.task.text.is_some() {
        "epochs"
    } else {
        "iterations"
    };
    let mut length = None;
    for item in overrides {
        match item.split_once('=') {
            Some((k, n)) if k.trim() == key => {
                length = Some(
                    n.trim()
                        .parse::<usize>()
                        .map_err(|_| anyhow!("--set {item}: not a count"))?,
                )
            }
            _ => bail!("--set {item}: with --resume only `{key}` may be changed"),
        }
    }
    Trainer::resume(dir, length)
}

/// Prints a run's progress: a bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    per_epoch: usize,
}

impl Progress {
    fn new(trainer: &Trainer) -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::new(trainer.iterations() as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} it  {msg}  [{elapsed_precise} < {eta_precise}]",
                )
                .expect("a valid template"),
            );
            bar.set_position(trainer.iteration() as u64);
            bar
        });
        Progress {
            bar,
            per_epoch: trainer.iterations_per_epoch(),
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    fn event(&self, event: &Event) {
        match event {
            Event::Step { iteration, loss } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(*iteration as u64);
                    bar.set_message(format!(
                        "epoch {:.2}  loss {loss:.4}",
                        *iteration as f64 / self.per_epoch as f64
                    ));
                }
            }
            Event::Evaluated(m) => self.line(&format_row(m)),
            Event::Saved(_) => {}
        }
    }
}

fn format_row(m: &Metrics) -> String {
    let mut row = format!(
        "iter {:>6}  epoch {:5.2}  train loss {:.4} acc {:6.2}%  test loss {:.4} acc {:6.2}%  {:7.2} s  {:6.2} ms/it",
        m.iteration,
        m.epoch,
        m.train_loss,
        100.0 * m.train_accuracy,
        m.test_loss,
        100.0 * m.test_accuracy,
        m.elapsed_s,
        m.ms_per_iteration
    );
    if let (Some(ppl), Some(bpb)) = (m.val_perplexity, m.val_bits_per_byte) {
        row.push_str(&format!("  val ppl {ppl:.3} bpb {bpb:.3}"));
    }
    if let Some(rate) = m.tokens_per_s {
        row.push_str(&format!("  {rate:.0} tok/s"));
    }
    row
}

fn train(
    mut trainer: Trainer,
    dir: &Path,
    save_every: Option<usize>,
    metrics: Option<&Path>,
) -> Result<Metrics> {
    println!("{}", serde_json::to_string(trainer.config())?);
    if let Some(summary) = trainer.summary() {
        println!("{summary}");
    }
    println!("checkpoint: {}", dir.display());
    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupt.clone();
        // A first Ctrl-C stops after the current iteration and saves; a second one
        // ends at once (every save is atomic, so the last checkpoint stays whole).
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let options = RunOptions {
        checkpoint: Some(dir.to_path_buf()),
        save_every,
        interrupt: Some(interrupt),
    };
    let progress = Progress::new(&trainer);
    let outcome = trainer.run_with(&options, |event| {
        progress.event(&event);
        if let (Event::Evaluated(m), Some(path)) = (&event, metrics) {
            training::append_row(path, m)?;
        }
        Ok(())
    });
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    match outcome? {
        Outcome::Finished(last) => {
            println!("saved: {}", dir.display());
            Ok(last)
        }
        Outcome::Interrupted(iteration) => {
            eprintln!(
                "interrupted at iteration {iteration}; saved to {0} (continue with: tsrnn train --resume {0})",
                dir.display()
            );
            std::process::exit(130);
        }
    }
}

/// A checkpoint's network as saved: shape, realised weights, embedding, tokenizer.
struct Saved {
    dir: PathBuf,
    iteration: usize,
    config: RunConfig,
    shape: tsrnn::fused::Shape,
    weights: Vec<Vec<f32>>,
    embedding: Option<Vec<f32>>,
    tokenizer: Option<TextTokenizer>,
}

/// Loads a checkpoint (its `best/` with `best`), its task changed by `overrides`.
fn load_saved(dir: &Path, best: bool, overrides: &[String]) -> Result<Saved> {
    let dir = if best {
        dir.join(BEST_DIR)
    } else {
        dir.to_path_buf()
    };
    let saved = checkpoint::read(&dir)?;
    let trained = &saved.config.task;
    let config = config::with_overrides(trained, overrides, "--set")?;
    if (config.task, &config.layers, config.cell) != (trained.task, &trained.layers, trained.cell) {
        bail!(
            "--set: the task kind, layers and cell must stay those the checkpoint was trained with"
        );
    }
    let model_file = dir.join(MODEL_FILE);
    let (tokenizer, embedding, shape) = match &config.text {
        Some(text) => {
            let tokenizer =
                TextTokenizer::load(&dir.join(checkpoint::TOKENIZER_FILE).to_string_lossy())?;
            let table = saved.model.get(training::EMBEDDING).ok_or_else(|| {
                anyhow!(
                    "{}: no tensor `{}`",
                    model_file.display(),
                    training::EMBEDDING
                )
            })?;
            let rows = table.dims()[0];
            let table = checkpoint::tensor(
                &saved.model,
                &model_file,
                training::EMBEDDING,
                &[rows, text.embed],
            )?;
            (
                Some(tokenizer),
                Some(table.flatten_all()?.to_vec1::<f32>()?),
                config.shape_with_vocabulary(rows),
            )
        }
        None => (None, None, config.shape()),
    };
    let weights = weight_names(&shape)
        .iter()
        .zip(shape.weight_shapes())
        .map(|(name, (rows, cols))| {
            let t = checkpoint::tensor(&saved.model, &model_file, name, &[rows, cols])?;
            Ok(t.flatten_all()?.to_vec1::<f32>()?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Saved {
        iteration: saved.config.iteration,
        dir,
        config,
        shape,
        weights,
        embedding,
        tokenizer,
    })
}

fn eval(
    dir: &Path,
    best: bool,
    overrides: &[String],
    out: Option<&Path>,
    corpus: Option<&str>,
    report_dir: Option<&Path>,
) -> Result<()> {
    let saved = load_saved(dir, best, overrides)?;
    let config = &saved.config;
    if config.task == TaskKind::Lm {
        return eval_lm(&saved, dir, out, corpus, report_dir);
    }
    if corpus.is_some() || report_dir.is_some() {
        bail!(
            "--corpus and --report are for language models; use --set test_corpus=... for a classifier"
        );
    }
    let test = match config.task.build(config.delay, config.seq_len) {
        Some(task) => {
            let set = tasks::generate(
                task.as_ref(),
                config.test_size,
                training::derive_seed(config.seed, 2),
            );
            Dataset::from_set(&set)
        }
        None => classify::prepare(config, saved.tokenizer.clone())?.test,
    };
    let (test_loss, test_accuracy) = training::evaluate(
        &saved.weights,
        saved.embedding.as_deref().map(|t| (t, saved.shape.n_in)),
        &test,
        &saved.shape,
        None,
    )?;
    let report = serde_json::json!({
        "checkpoint": saved.dir,
        "iteration": saved.iteration,
        "task": config,
        "test_size": test.count,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
    });
    print_json(&report, out)
}

/// Perplexity of a language model on its held-out text or on a corpus.
fn eval_lm(
    saved: &Saved,
    run_dir: &Path,
    out: Option<&Path>,
    corpus: Option<&str>,
    report_dir: Option<&Path>,
) -> Result<()> {
    let config = &saved.config;
    let tokenizer = saved
        .tokenizer
        .clone()
        .expect("a language model has a tokenizer");
    let (stream, name) = match corpus {
        Some(spec) => (lm::read_stream(spec, &tokenizer)?, spec.to_string()),
        None => {
            let text = config.text.as_ref().expect("a text task");
            (
                lm::prepare(config, Some(tokenizer))?.valid,
                format!(
                    "{} (held out)",
                    text.test_corpus.as_ref().unwrap_or(&text.corpus)
                ),
            )
        }
    };
    let streams = Dataset::streams(
        &stream.ids,
        config.batch.min(stream.ids.len().saturating_sub(1)).max(1),
    );
    let started = std::time::Instant::now();
    let (nll, accuracy) = training::evaluate(
        &saved.weights,
        saved.embedding.as_deref().map(|t| (t, saved.shape.n_in)),
        &streams,
        &saved.shape,
        Some(1024),
    )?;
    let report = tsrnn::report::Perplexity::new(
        saved.dir.clone(),
        name,
        saved.iteration,
        (nll, accuracy),
        streams.labels.len(),
        (stream.ids.len(), stream.bytes),
        started.elapsed().as_secs_f64(),
    );
    if let Some(dir) = report_dir {
        let run = tsrnn::report::load_run(run_dir).ok();
        tsrnn::report::write_perplexity(&report, run.as_ref(), dir)?;
        eprintln!("report: {}", dir.join("report.md").display());
    }
    print_json(&serde_json::to_value(&report)?, out)
}

fn print_json(value: &serde_json::Value, out: Option<&Path>) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    if let Some(path) = out {
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}

/// Samples `count` tokens from a language model after `prompt`, printing the text
/// as it grows.
fn generate(
    dir: &Path,
    prompt: &str,
    count: usize,
    temperature: f64,
    top_k: Option<usize>,
    seed: u64,
) -> Result<()> {
    let saved = load_saved(dir, false, &[])?;
    if saved.config.task != TaskKind::Lm {
        bail!(
            "{}: a checkpoint of task {}, not a language model",
            dir.display(),
            saved.config.task.name()
        );
    }
    if !(temperature >= 0.0 && temperature.is_finite()) {
        bail!("--temperature must be a non-negative number");
    }
    let tokenizer = saved
        .tokenizer
        .as_ref()
        .expect("a language model has a tokenizer");
    let prompt_ids = tokenizer.encode(prompt)?;
    if prompt_ids.is_empty() {
        bail!("--prompt {prompt:?} encodes to no tokens");
    }
    let sampler = Sampler { temperature, top_k };
    let mut out = std::io::stdout().lock();
    write!(out, "{prompt}")?;
    // Print as the decoded text grows; a byte-level token may end mid-character,
    // which waits for the next one.
    let mut generated = Vec::new();
    let mut shown = String::new();
    generate::sample(
        &saved.weights,
        saved.embedding.as_deref().expect("an embedding"),
        &saved.shape,
        &prompt_ids,
        count,
        &sampler,
        seed,
        |id| {
            generated.push(id);
            let text = tokenizer.decode(&generated)?;
            if text.starts_with(&shown) && !text.ends_with('\u{FFFD}') {
                write!(out, "{}", &text[shown.len()..])?;
                out.flush()?;
                shown = text;
            }
            Ok(())
        },
    )?;
    writeln!(out)?;
    Ok(())
}

fn report(runs: &[PathBuf], out: &Path) -> Result<()> {
    let runs = runs
        .iter()
        .map(|p| tsrnn::report::load_run(p))
        .collect::<Result<Vec<_>>>()?;
    tsrnn::report::write(&runs, out)?;
    println!("report: {}", out.join("report.md").display());
    Ok(())
}

fn compare(task: &Path, overrides: &[String], out: Option<PathBuf>) -> Result<()> {
    let configs =
        [Space::Target, Space::Weight].map(|space| config::load(task, overrides, Some(space)));
    let [target, weight] = configs;
    let (target, weight) = (target?, weight?);
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let name = format!("compare-{}-{stamp}", target.task.name());
    let out = out.unwrap_or_else(|| PathBuf::from("reports").join(&name));
    let base = PathBuf::from("checkpoints").join(&name);
    let mut finals = Vec::new();
    for config in [&target, &weight] {
        let dir = base.join(config.space.name());
        println!("== {} space ==", config.space.name());
        finals.push((
            config.space,
            train(fresh_trainer(config, &dir)?, &dir, None, None)?,
        ));
    }
    let runs = [base.join("target"), base.join("weight")];
    report(&runs, &out)?;
    for (space, m) in &finals {
        println!(
            "{:<6} space: test accuracy {:.2}% after {} iterations, {:.1} s ({:.2} ms/it)",
            space.name(),
            100.0 * m.test_accuracy,
            m.iteration,
            m.elapsed_s,
            m.ms_per_iteration
        );
    }
    Ok(())
}

fn list_tasks() {
    println!("Task kinds (the `task` field):");
    for kind in TaskKind::ALL {
        let defaults = match kind.default_delay() {
            Some(d) => format!(
                "delay {d}, seq_len {}, hidden {}",
                kind.default_seq_len(d),
                kind.default_hidden(d)
            ),
            None => format!(
                "seq_len {}, hidden {}",
                kind.default_seq_len(0),
                kind.default_hidden(0)
            ),
        };
        println!("  {:<15} {}", kind.name(), kind.summary());
        println!("  {:<15} defaults: {defaults}", "");
    }
    println!("\nTask-file fields (all optional but `task`; override any with --set key=value):");
    let width = FIELDS.iter().map(|(f, _, _)| f.len()).max().unwrap_or(0);
    for (field, default, meaning) in FIELDS {
        println!("  {field:<width$} {default:<11} {meaning}");
    }
}
