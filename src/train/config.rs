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
    /// The space of the output layer's parameters (target space networks).
    pub output_space: Option<Space>,
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
    /// The corpus to read (text tasks; see [`crate::text::corpus`]).
    pub corpus: Option<String>,
    /// A separate test corpus (text tasks).
    pub test_corpus: Option<String>,
    /// Fraction held out for testing when the corpus has no test split.
    pub test_fraction: Option<f64>,
    /// `word`, `char`, `bpe` (trained on the training split), a `tokenizer.json`
    /// path, or `hf:NAME` from the Hub.
    pub tokenizer: Option<String>,
    /// Vocabulary size of a trained tokenizer, special tokens included.
    pub vocab: Option<usize>,
    /// Embedding width.
    pub embed: Option<usize>,
    /// Number of classes (text classification).
    pub classes: Option<usize>,
    /// `noise` or `prefixes`: the realisation inputs of a text task (target space).
    pub realisation_inputs: Option<RealisationInputs>,
    /// Passes over the training set (text tasks, instead of `iterations`).
    pub epochs: Option<usize>,
    /// A language model's chance, per stream and window, of starting the window
    /// from zero state instead of the carried one.
    pub state_reset: Option<f64>,
}

/// What a text task's realisation inputs `X̄` are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RealisationInputs {
    /// Uniform noise in `[-1, 1]` in embedding space (the paper's choice).
    #[default]
    Noise,
    /// The first `rsl` tokens of the first `rbs` training texts, embedded once by
    /// the initial embedding.
    Prefixes,
}

/// The resolved settings of a text task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// The corpus.
    pub corpus: String,
    /// A separate test corpus, if any.
    pub test_corpus: Option<String>,
    /// Fraction held out for testing when the corpus has no test split.
    pub test_fraction: f64,
    /// The tokenizer: a kind to train, a file, or a Hub id.
    pub tokenizer: String,
    /// Vocabulary size of a trained tokenizer.
    pub vocab: usize,
    /// Embedding width.
    pub embed: usize,
    /// Number of classes.
    pub classes: usize,
    /// Realisation inputs.
    pub realisation_inputs: RealisationInputs,
    /// Passes over the training set.
    pub epochs: usize,
    /// A language model's chance, per stream and window, of a zero start state.
    #[serde(default)]
    pub state_reset: f64,
}

/// Every field of a task file, its default and meaning: the table `tsrnn tasks` prints.
pub const FIELDS: &[(&str, &str, &str)] = &[
    ("task", "(required)", "task kind, see above"),
    ("delay", "per kind", "delay d (not for temporal-order)"),
    (
        "seq_len",
        "per kind",
        "sequence length (delay + 50; classify: last tokens kept, 500; lm: chunk, 100)",
    ),
    (
        "train_size",
        "400",
        "training sequences (a fixed set; text: at most this many texts, 0 = all)",
    ),
    (
        "test_size",
        "1000",
        "test sequences (a fixed set from another seed; text: at most, 0 = all)",
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
    (
        "output_space",
        "space",
        "target | weight: the output layer's parameters (weight: large vocabularies)",
    ),
    (
        "batch",
        "train_size",
        "minibatch size (classify: 40; lm: parallel streams, 32)",
    ),
    ("rbs", "batch", "realisation batch size (target space)"),
    (
        "rsl",
        "seq_len",
        "realisation sequence length (target space; text: 60)",
    ),
    (
        "iterations",
        "1000",
        "training iterations (text tasks count epochs)",
    ),
    (
        "eval_every",
        "10",
        "iterations between evaluations (text: each epoch)",
    ),
    (
        "seed",
        "0",
        "seed of the data, the initialisation and the batch order",
    ),
    (
        "corpus",
        "(text)",
        "corpus to read: file, directory, IMDB dir or .tar.gz, A.{pos,neg}, .jsonl, hf://",
    ),
    (
        "test_corpus",
        "none",
        "separate test corpus (else the corpus's test split, else test_fraction)",
    ),
    (
        "test_fraction",
        "0.1",
        "held out when the corpus has no test split (classify: seeded; lm: the end)",
    ),
    (
        "tokenizer",
        "word",
        "word | char | bpe (trained; classify: word, lm: char), a tokenizer.json path, or hf:NAME",
    ),
    (
        "vocab",
        "5000",
        "vocabulary of a trained tokenizer, specials included",
    ),
    ("embed", "32", "embedding width (trained in weight space)"),
    (
        "classes",
        "2",
        "classes of a classify task (lm: the vocabulary)",
    ),
    (
        "realisation_inputs",
        "noise",
        "noise (uniform in [-1,1]) | prefixes (embedded training texts) (text, target space)",
    ),
    ("epochs", "3", "passes over the training set (text tasks)"),
    (
        "state_reset",
        "0",
        "lm: chance a stream starts a window from zero state (teaches cold starts)",
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
    /// The space of the output layer's parameters: targets, or (for large
    /// vocabularies) weights trained by backpropagation.
    #[serde(default = "target_space")]
    pub output_space: Space,
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
    /// The text settings of a text task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
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
        let text = task.is_text();
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
        // Text tasks take their sizes from the corpus: train_size and test_size cap
        // them (0: every text), and the run is counted in epochs.
        let (train_size, test_size) = if text {
            (self.train_size.unwrap_or(0), self.test_size.unwrap_or(0))
        } else {
            (
                positive("train_size", self.train_size.unwrap_or(400))?,
                positive("test_size", self.test_size.unwrap_or(1000))?,
            )
        };
        let batch = positive(
            "batch",
            self.batch.unwrap_or(match task {
                TaskKind::Lm => 32,
                _ if text => 40,
                _ => train_size,
            }),
        )?;
        if train_size > 0 && batch > train_size {
            bail!("batch ({batch}) must not exceed train_size ({train_size})");
        }
        let rbs = positive("rbs", self.rbs.unwrap_or(batch))?;
        if !text && rbs > train_size {
            bail!(
                "rbs ({rbs}) must not exceed train_size ({train_size}): the realisation batch is drawn from the training set"
            );
        }
        let rsl = positive(
            "rsl",
            self.rsl
                .unwrap_or(if text { seq_len.min(60) } else { seq_len }),
        )?;
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
        let (iterations, eval_every) = if text {
            if self.iterations.is_some_and(|n| n > 0) {
                bail!(
                    "field `iterations` does not apply to task {}: give `epochs`",
                    task.name()
                );
            }
            (0, self.eval_every.unwrap_or(0))
        } else {
            (
                positive("iterations", self.iterations.unwrap_or(1000))?,
                positive("eval_every", self.eval_every.unwrap_or(10))?,
            )
        };
        Ok(RunConfig {
            task,
            delay,
            seq_len,
            train_size,
            test_size,
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
            output_space: self.output_space.unwrap_or(space),
            batch,
            rbs,
            rsl,
            iterations,
            eval_every,
            seed: self.seed.unwrap_or(0),
            text: if text {
                Some(self.resolve_text(task)?)
            } else {
                self.refuse_text_fields(task)?;
                None
            },
        })
    }

    /// The text settings of a text task.
    fn resolve_text(&self, task: TaskKind) -> Result<TextConfig> {
        let Some(corpus) = self.corpus.clone() else {
            bail!(
                "missing field `corpus`: task {} reads a corpus",
                task.name()
            );
        };
        let test_fraction = self.test_fraction.unwrap_or(0.1);
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            bail!("test_fraction must lie strictly between 0 and 1 (got {test_fraction})");
        }
        let vocab = self.vocab.unwrap_or(5000);
        if vocab < 3 {
            bail!("vocab must be at least 3 (two special tokens and a word)");
        }
        // A language model's classes are its vocabulary, known once the tokenizer is.
        let classes = match (task, self.classes) {
            (TaskKind::Lm, Some(_)) => {
                bail!("field `classes` does not apply to task lm: its classes are the vocabulary")
            }
            (TaskKind::Lm, None) => 0,
            (_, classes) => classes.unwrap_or(2),
        };
        if task != TaskKind::Lm && classes < 2 {
            bail!("classes must be at least 2");
        }
        Ok(TextConfig {
            corpus,
            test_corpus: self.test_corpus.clone(),
            test_fraction,
            tokenizer: self.tokenizer.clone().unwrap_or_else(|| {
                match task {
                    TaskKind::Lm => "char",
                    _ => "word",
                }
                .into()
            }),
            vocab,
            embed: positive("embed", self.embed.unwrap_or(32))?,
            classes,
            realisation_inputs: self.realisation_inputs.unwrap_or_default(),
            epochs: positive("epochs", self.epochs.unwrap_or(3))?,
            state_reset: match (task, self.state_reset) {
                (TaskKind::Lm, Some(p)) if (0.0..=1.0).contains(&p) => p,
                (TaskKind::Lm, Some(p)) => bail!("state_reset must lie in [0, 1] (got {p})"),
                (_, Some(_)) => bail!("field `state_reset` applies to task lm only"),
                (_, None) => 0.0,
            },
        })
    }

    /// Refuses the text fields in a task that reads no corpus.
    fn refuse_text_fields(&self, task: TaskKind) -> Result<()> {
        let given = [
            ("corpus", self.corpus.is_some()),
            ("test_corpus", self.test_corpus.is_some()),
            ("test_fraction", self.test_fraction.is_some()),
            ("tokenizer", self.tokenizer.is_some()),
            ("vocab", self.vocab.is_some()),
            ("embed", self.embed.is_some()),
            ("classes", self.classes.is_some()),
            ("realisation_inputs", self.realisation_inputs.is_some()),
            ("epochs", self.epochs.is_some()),
            ("state_reset", self.state_reset.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(_, g)| *g) {
            bail!(
                "field `{field}` does not apply to task {}: it is for text tasks",
                task.name()
            );
        }
        Ok(())
    }
}

impl RunConfig {
    /// The network's shape for a text task whose embedding has `rows` rows (the
    /// vocabulary): a language model predicts one of them.
    pub fn shape_with_vocabulary(&self, rows: usize) -> crate::fused::Shape {
        let mut shape = self.shape();
        if self.task == TaskKind::Lm {
            shape.classes = rows;
        }
        shape
    }

    /// The network's shape for this task.
    ///
    /// A language model's classes are its vocabulary, which the tokenizer decides:
    /// see [`RunConfig::shape_with_vocabulary`].
    pub fn shape(&self) -> crate::fused::Shape {
        let (n_in, classes) = match (&self.text, self.task.build(self.delay, self.seq_len)) {
            (Some(text), _) => (text.embed, text.classes),
            (None, Some(task)) => (task.n_in(), task.classes()),
            (None, None) => unreachable!("a resolved text task has its text settings"),
        };
        crate::fused::Shape {
            n_in,
            layers: self.layers.clone(),
            classes,
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
            output_space: Some(c.output_space),
            batch: Some(c.batch),
            rbs: Some(c.rbs),
            rsl: Some(c.rsl),
            iterations: (!c.task.is_text()).then_some(c.iterations),
            eval_every: Some(c.eval_every),
            seed: Some(c.seed),
            corpus: c.text.as_ref().map(|t| t.corpus.clone()),
            test_corpus: c.text.as_ref().and_then(|t| t.test_corpus.clone()),
            test_fraction: c.text.as_ref().map(|t| t.test_fraction),
            tokenizer: c.text.as_ref().map(|t| t.tokenizer.clone()),
            vocab: c.text.as_ref().map(|t| t.vocab),
            embed: c.text.as_ref().map(|t| t.embed),
            classes: c
                .text
                .as_ref()
                .filter(|_| c.task != TaskKind::Lm)
                .map(|t| t.classes),
            realisation_inputs: c.text.as_ref().map(|t| t.realisation_inputs),
            epochs: c.text.as_ref().map(|t| t.epochs),
            state_reset: c
                .text
                .as_ref()
                .filter(|_| c.task == TaskKind::Lm)
                .map(|t| t.state_reset),
        }
    }
}

/// The default of fields that a checkpoint written before they existed lacks.
fn target_space() -> Space {
    Space::Target
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
