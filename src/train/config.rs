//! Task files: what to train, on what, and how. A task file is a flat JSON object;
//! every field but `task` may be left out and takes the documented default, and
//! `--set key=value` overrides any field.

use crate::cells::CellKind;
use crate::target::Realisation;
use crate::tasks::TaskKind;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

/// The space the network is trained in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Space {
    /// Targets are the parameters; weights are realised by ridge solves.
    Target,
    /// Weights are the parameters (backpropagation through time).
    Weight,
}

impl Space {
    /// The name used in task files and output.
    pub fn name(self) -> &'static str {
        match self {
            Space::Target => "target",
            Space::Weight => "weight",
        }
    }
}

/// The optimisers a task file can name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// Adam with β₁ 0.9, β₂ 0.999, ε 1e-8.
    #[default]
    Adam,
}

/// A task file as written: every field optional except `task`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    /// The task kind.
    pub task: Option<TaskKind>,
    /// Delay `d` (tasks that have one).
    pub delay: Option<usize>,
    /// Sequence length.
    pub seq_len: Option<usize>,
    /// Training sequences.
    pub train_size: Option<usize>,
    /// Test sequences.
    pub test_size: Option<usize>,
    /// Hidden units of a one-layer network.
    pub hidden: Option<usize>,
    /// Hidden units of each recurrent layer, bottom first (instead of `hidden`).
    pub layers: Option<Vec<usize>>,
    /// The recurrent cell: `tanh` or `lstm`.
    pub cell: Option<CellKind>,
    /// `target` or `weight`.
    pub space: Option<Space>,
    /// The optimiser (`adam`).
    pub optimizer: Option<Optimizer>,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Ridge regularisation `λ` (target space).
    pub lambda: Option<f64>,
    /// Initial target standard deviation `σ₀` (target space).
    pub target_std: Option<f64>,
    /// Output-layer realisation: `sequential` or `optimistic` (target space).
    pub realisation: Option<Realisation>,
    /// Minibatch size.
    pub batch: Option<usize>,
    /// Realisation batch size (target space).
    pub rbs: Option<usize>,
    /// Realisation sequence length (target space).
    pub rsl: Option<usize>,
    /// Training iterations.
    pub iterations: Option<usize>,
    /// Iterations between evaluations.
    pub eval_every: Option<usize>,
    /// Seed of every random choice.
    pub seed: Option<u64>,
}

/// Every field of a task file, its default and meaning: the table `tsrnn tasks` prints.
pub const FIELDS: &[(&str, &str, &str)] = &[
    ("task", "(required)", "task kind, see above"),
    ("delay", "per kind", "delay d (not for temporal-order)"),
    (
        "seq_len",
        "per kind",
        "sequence length (delay + 50 for the paper's tasks)",
    ),
    ("train_size", "400", "training sequences (a fixed set)"),
    (
        "test_size",
        "1000",
        "test sequences (a fixed set from another seed)",
    ),
    (
        "hidden",
        "per kind",
        "hidden units of one layer (delay + 3; + 5 for xor and bit-adder)",
    ),
    (
        "layers",
        "[hidden]",
        "hidden units of each stacked layer, e.g. [64,64] (instead of hidden)",
    ),
    ("cell", "tanh", "tanh | lstm | gru"),
    ("space", "target", "target | weight"),
    ("optimizer", "adam", "adam"),
    (
        "lr",
        "per space",
        "learning rate (0.01 target, 0.001 weight)",
    ),
    (
        "lambda",
        "0.1",
        "ridge regularisation of the solves (target space)",
    ),
    (
        "target_std",
        "1.0",
        "std of the initial targets, truncated at 2σ (target space)",
    ),
    (
        "realisation",
        "sequential",
        "sequential | optimistic output-layer solve (target space)",
    ),
    ("batch", "train_size", "minibatch size"),
    ("rbs", "batch", "realisation batch size (target space)"),
    (
        "rsl",
        "seq_len",
        "realisation sequence length (target space)",
    ),
    ("iterations", "1000", "training iterations"),
    ("eval_every", "10", "iterations between evaluations"),
    (
        "seed",
        "0",
        "seed of the data, the initialisation and the batch order",
    ),
];

/// A task with every choice made and checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The task kind.
    pub task: TaskKind,
    /// Delay (0 where the kind has none).
    pub delay: usize,
    /// Sequence length.
    pub seq_len: usize,
    /// Training sequences.
    pub train_size: usize,
    /// Test sequences.
    pub test_size: usize,
    /// Hidden units of each recurrent layer, bottom first.
    pub layers: Vec<usize>,
    /// The recurrent cell.
    pub cell: CellKind,
    /// The space trained in.
    pub space: Space,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// Learning rate.
    pub lr: f64,
    /// Ridge regularisation.
    pub lambda: f64,
    /// Initial target standard deviation.
    pub target_std: f64,
    /// Output-layer realisation variant.
    pub realisation: Realisation,
    /// Minibatch size.
    pub batch: usize,
    /// Realisation batch size.
    pub rbs: usize,
    /// Realisation sequence length.
    pub rsl: usize,
    /// Training iterations.
    pub iterations: usize,
    /// Iterations between evaluations.
    pub eval_every: usize,
    /// Seed.
    pub seed: u64,
}

/// Reads a task file, applies `key=value` overrides, and resolves it. Every error
/// names the file and the field.
pub fn load(path: &Path, overrides: &[String], space: Option<Space>) -> Result<RunConfig> {
    let name = path.display();
    let text = std::fs::read(path).with_context(|| format!("{name}: cannot read the task file"))?;
    let text = String::from_utf8(text).map_err(|e| {
        anyhow::anyhow!(
            "{name}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{name}: not valid JSON"))?;
    let Value::Object(mut fields) = value else {
        bail!("{name}: a task file must be a JSON object");
    };
    for item in overrides {
        apply_override(&mut fields, item).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    if let Some(space) = space {
        fields.insert("space".into(), Value::String(space.name().into()));
    }
    let file: TaskFile = serde_json::from_value(Value::Object(fields))
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    file.resolve().map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

/// A resolved task with `key=value` overrides applied and resolved again;
/// `source` names where the task came from, for messages.
pub fn with_overrides(config: &RunConfig, overrides: &[String], source: &str) -> Result<RunConfig> {
    let Value::Object(mut fields) = serde_json::to_value(TaskFile::from(config))? else {
        unreachable!("a task file serialises to an object");
    };
    fields.retain(|_, v| !v.is_null());
    for item in overrides {
        apply_override(&mut fields, item).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    }
    let file: TaskFile = serde_json::from_value(Value::Object(fields))
        .map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    file.resolve().map_err(|e| anyhow::anyhow!("{source}: {e}"))
}

/// The fields a task file may hold, in order: those of [`TaskFile`] itself.
pub fn field_names() -> Vec<String> {
    match serde_json::to_value(TaskFile::default()) {
        Ok(Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => unreachable!("a task file serialises to an object"),
    }
}

/// Applies one `key=value` override. The value is read as JSON where it parses
/// (`40`, `0.5`, `null`), and as a string otherwise (`weight`).
pub fn apply_override(fields: &mut Map<String, Value>, item: &str) -> Result<()> {
    let Some((key, raw)) = item.split_once('=') else {
        bail!("--set {item}: expected key=value");
    };
    let key = key.trim();
    if !FIELDS.iter().any(|(field, _, _)| *field == key) {
        let known: Vec<&str> = FIELDS.iter().map(|(f, _, _)| *f).collect();
        bail!(
            "--set {item}: unknown field `{key}` (fields: {})",
            known.join(", ")
        );
    }
    let value =
        serde_json::from_str(raw.trim()).unwrap_or_else(|_| Value::String(raw.trim().into()));
    fields.insert(key.into(), value);
    Ok(())
}

impl TaskFile {
    /// Fills in the defaults and checks every field and combination.
    pub fn resolve(&self) -> Result<RunConfig> {
        let Some(task) = self.task else {
            bail!("missing field `task` (one of: {})", kind_names());
        };
        let delay = match (task.uses_delay(), self.delay) {
            (false, Some(_)) => bail!("field `delay` does not apply to task {}", task.name()),
            (false, None) => 0,
            (true, d) => d.or(task.default_delay()).unwrap_or(0),
        };
        if task.uses_delay() && delay == 0 {
            bail!("delay must be at least 1");
        }
        let default_len = task.default_seq_len(delay);
        let seq_len = match self.seq_len {
            Some(len) if !task.seq_len_is_free() && len != default_len => bail!(
                "seq_len ({len}) is fixed by the delay for task {}: it must be {default_len} or left out",
                task.name()
            ),
            Some(len) => len,
            None => default_len,
        };
        if task.uses_delay() && delay >= seq_len {
            bail!("delay ({delay}) must be less than seq_len ({seq_len})");
        }
        if seq_len < task.min_seq_len(delay) {
            bail!(
                "seq_len ({seq_len}) must be at least {} for task {}",
                task.min_seq_len(delay),
                task.name()
            );
        }
        let space = self.space.unwrap_or(Space::Target);
        let train_size = positive("train_size", self.train_size.unwrap_or(400))?;
        let batch = positive("batch", self.batch.unwrap_or(train_size))?;
        if batch > train_size {
            bail!("batch ({batch}) must not exceed train_size ({train_size})");
        }
        let rbs = positive("rbs", self.rbs.unwrap_or(batch))?;
        if rbs > train_size {
            bail!(
                "rbs ({rbs}) must not exceed train_size ({train_size}): the realisation batch is drawn from the training set"
            );
        }
        let rsl = positive("rsl", self.rsl.unwrap_or(seq_len))?;
        if rsl > seq_len {
            bail!("rsl ({rsl}) must not exceed seq_len ({seq_len})");
        }
        let lr = self.lr.unwrap_or(match space {
            Space::Target => 0.01,
            Space::Weight => 0.001,
        });
        if !(lr > 0.0 && lr.is_finite()) {
            bail!("lr must be a positive number (got {lr})");
        }
        let lambda = self.lambda.unwrap_or(0.1);
        if !(lambda > 0.0 && lambda.is_finite()) {
            bail!("lambda must be a positive number (got {lambda}): the ridge solve needs λ > 0");
        }
        let target_std = self.target_std.unwrap_or(1.0);
        if !(target_std > 0.0 && target_std.is_finite()) {
            bail!("target_std must be a positive number (got {target_std})");
        }
        Ok(RunConfig {
            task,
            delay,
            seq_len,
            train_size,
            test_size: positive("test_size", self.test_size.unwrap_or(1000))?,
            layers: match (&self.layers, self.hidden) {
                (Some(_), Some(_)) => bail!("give `hidden` or `layers`, not both"),
                (Some(layers), None) if layers.is_empty() => {
                    bail!("layers must name at least one layer")
                }
                (Some(layers), None) => {
                    for &units in layers {
                        positive("layers", units)?;
                    }
                    layers.clone()
                }
                (None, hidden) => vec![positive(
                    "hidden",
                    hidden.unwrap_or(task.default_hidden(delay)),
                )?],
            },
            cell: self.cell.unwrap_or_default(),
            space,
            optimizer: self.optimizer.unwrap_or_default(),
            lr,
            lambda,
            target_std,
            realisation: self.realisation.unwrap_or_default(),
            batch,
            rbs,
            rsl,
            iterations: positive("iterations", self.iterations.unwrap_or(1000))?,
            eval_every: positive("eval_every", self.eval_every.unwrap_or(10))?,
            seed: self.seed.unwrap_or(0),
        })
    }
}

impl RunConfig {
    /// The network's shape for this task.
    pub fn shape(&self) -> crate::fused::Shape {
        let task = self.task.build(self.delay, self.seq_len);
        crate::fused::Shape {
            n_in: task.n_in(),
            layers: self.layers.clone(),
            classes: task.classes(),
            cell: self.cell,
        }
    }

    /// Checks a resolved task read back from a file (a checkpoint's `config.json`)
    /// by the same rules as a task file.
    pub fn validate(&self) -> Result<()> {
        let resolved = TaskFile::from(self).resolve()?;
        if &resolved != self {
            bail!("the task does not resolve to itself: {resolved:?}");
        }
        Ok(())
    }
}

impl From<&RunConfig> for TaskFile {
    /// The task file that resolves to this task.
    fn from(config: &RunConfig) -> TaskFile {
        let c = config;
        TaskFile {
            task: Some(c.task),
            delay: c.task.uses_delay().then_some(c.delay),
            seq_len: Some(c.seq_len),
            train_size: Some(c.train_size),
            test_size: Some(c.test_size),
            hidden: None,
            layers: Some(c.layers.clone()),
            cell: Some(c.cell),
            space: Some(c.space),
            optimizer: Some(c.optimizer),
            lr: Some(c.lr),
            lambda: Some(c.lambda),
            target_std: Some(c.target_std),
            realisation: Some(c.realisation),
            batch: Some(c.batch),
            rbs: Some(c.rbs),
            rsl: Some(c.rsl),
            iterations: Some(c.iterations),
            eval_every: Some(c.eval_every),
            seed: Some(c.seed),
        }
    }
}

fn positive(field: &str, value: usize) -> Result<usize> {
    if value == 0 {
        bail!("{field} must be at least 1");
    }
    Ok(value)
}

fn kind_names() -> String {
    TaskKind::ALL
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_fields_are_the_task_file_fields() {
        let mut documented: Vec<String> = FIELDS.iter().map(|(f, _, _)| f.to_string()).collect();
        let mut actual = field_names();
        documented.sort();
        actual.sort();
        assert_eq!(documented, actual);
    }
}
