//! The `tsrnn` command line.

use anyhow::{Context, Result};

// Training allocates and frees tensors of megabytes every iteration; the system
// allocator returns them to the kernel and pays a page fault per page to get them
// back, which cost more than the arithmetic.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use tsrnn::tasks::TaskKind;
use tsrnn::train::config::{self, FIELDS, Space};
use tsrnn::train::{Metrics, Trainer};

/// Recurrent networks trained in target space (Fairbank, Samothrakis & Citi, 2022).
#[derive(Parser)]
#[command(name = "tsrnn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network on a task file, printing one line per evaluation.
    Train {
        /// The task file (JSON), e.g. tasks/delay-recall.json.
        task: PathBuf,
        /// Train in this space, overriding the task file's `space`.
        #[arg(long, value_enum)]
        space: Option<Space>,
        /// Override a task field, e.g. `--set delay=40`; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Append every evaluation to this file as a JSON line.
        #[arg(long, value_name = "FILE")]
        metrics: Option<PathBuf>,
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
            space,
            overrides,
            metrics,
        } => train(&task, space, &overrides, metrics.as_deref()),
        Command::Tasks => {
            list_tasks();
            Ok(())
        }
    }
}

fn train(
    task: &Path,
    space: Option<Space>,
    overrides: &[String],
    metrics: Option<&Path>,
) -> Result<()> {
    let config = config::load(task, overrides, space)?;
    let mut sink = match metrics {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("{}: cannot open the metrics file", path.display()))?,
        ),
        None => None,
    };
    println!("{}", serde_json::to_string(&config)?);
    let mut trainer = Trainer::new(&config)?;
    trainer.run(|row: &Metrics| {
        println!(
            "iter {:>6}  train loss {:.4} acc {:6.2}%  test loss {:.4} acc {:6.2}%  {:7.2} s  {:6.2} ms/it",
            row.iteration,
            row.train_loss,
            100.0 * row.train_accuracy,
            row.test_loss,
            100.0 * row.test_accuracy,
            row.elapsed_s,
            row.ms_per_iteration
        );
        if let (Some(file), Some(path)) = (sink.as_mut(), metrics) {
            writeln!(file, "{}", serde_json::to_string(row)?)
                .and_then(|_| file.flush())
                .with_context(|| format!("{}: cannot write metrics", path.display()))?;
        }
        Ok(())
    })?;
    Ok(())
}

fn list_tasks() {
    println!("Task kinds (the `task` field):");
    for kind in TaskKind::ALL {
        let delay = kind
            .default_delay()
            .map(|d| {
                format!(
                    "delay {d}, seq_len {}, hidden {}",
                    kind.default_seq_len(d),
                    kind.default_hidden(d)
                )
            })
            .unwrap_or_else(|| {
                format!(
                    "seq_len {}, hidden {}",
                    kind.default_seq_len(0),
                    kind.default_hidden(0)
                )
            });
        println!("  {:<15} {}", kind.name(), kind.summary());
        println!("  {:<15} defaults: {delay}", "");
    }
    println!("\nTask-file fields (all optional but `task`; override any with --set key=value):");
    for (field, default, meaning) in FIELDS {
        println!("  {field:<12} {default:<11} {meaning}");
    }
}
