//! The training loop: data to tensors, minibatches, the optimiser, evaluation and
//! metrics. Prints nothing: the caller gets every evaluation as a [`Metrics`] row.

pub mod adam;
pub mod checkpoint;
pub mod config;

pub use crate::data::Dataset;

use crate::cells::State;
use crate::data::{self, Inputs};
use crate::fused::{self, Shape};
use crate::model::Model;
use crate::target::{TargetConfig, TargetRnn};
use crate::tasks;
use crate::tasks::TaskKind;
use crate::text::tokenizer::TextTokenizer;
use crate::text::{classify, lm};
use crate::weight::WeightRnn;
use adam::Adam;
use anyhow::{Context, Result, anyhow, bail};
use candle_core::{D, DType, Device, Tensor, Var};
use checkpoint::{BatchOrder, Checkpoint, CheckpointConfig};
use config::{RealisationInputs, RunConfig, Space};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a text task's data brings besides its training and test sets.
struct TextParts {
    tokenizer: TextTokenizer,
    summary: String,
    /// The realisation inputs' `prefixes` option, as tokens `(rsl, rbs)`.
    prefixes: Dataset,
    valid_tokens_per_byte: Option<f64>,
}

/// Tokens of a language model's training streams its train metrics are measured on.
pub const LM_TRAIN_EVAL: usize = 1 << 16;

/// Steps a language model's held-out streams are evaluated in at a time (the
/// state carried across, so the figure does not depend on it).
const EVAL_WINDOW: usize = 1024;

/// Checkpoint name of a text task's embedding, `(V, embed)`.
pub const EMBEDDING: &str = "embedding";

/// Training texts a text task's `train_loss` and `train_accuracy` are measured on
/// (an evenly spaced sample; every training text when there are fewer).
pub const TEXT_TRAIN_EVAL: usize = 5000;

/// Mean cross-entropy over the scored steps, and the fraction classified right.
pub fn loss_and_accuracy(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, f64)> {
    let c = logits.dim(D::Minus1)?;
    let logits = logits.reshape(((), c))?;
    let labels = labels.flatten_all()?;
    let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
    let right = logits
        .argmax(D::Minus1)?
        .eq(&labels)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    Ok((loss, right as f64))
}

/// One evaluation: the row printed and appended to the metrics file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Iterations completed.
    pub iteration: usize,
    /// Passes over the training set completed (fractional).
    #[serde(default)]
    pub epoch: f64,
    /// Mean cross-entropy on the training set (nats).
    pub train_loss: f64,
    /// Accuracy on the training set's scored steps.
    pub train_accuracy: f64,
    /// Mean cross-entropy on the test set.
    pub test_loss: f64,
    /// Accuracy on the test set's scored steps.
    pub test_accuracy: f64,
    /// Seconds spent training so far (evaluations excluded).
    pub elapsed_s: f64,
    /// Mean milliseconds per training iteration so far.
    pub ms_per_iteration: f64,
    /// The space trained in.
    pub space: Space,
    /// A language model's held-out loss (nats per token; the same as `test_loss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// `exp(val_loss)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_perplexity: Option<f64>,
    /// The held-out loss in bits per UTF-8 byte of text (comparable across
    /// tokenizers): `val_loss / ln 2 × tokens / bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_bits_per_byte: Option<f64>,
    /// Training tokens per second (text tasks; padding included for classify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
}

/// Independent seeds for each random choice of a run, derived from its one seed.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    // splitmix64 of the pair: nearby seeds and streams give unrelated generators.
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(stream.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(0x94D0_49BB_1331_11EB);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A training run in progress.
pub struct Trainer {
    config: RunConfig,
    train: Dataset,
    test: Dataset,
    /// The training sequences the train metrics are measured on.
    train_eval: Dataset,
    model: Box<dyn Model>,
    /// A text task's embedding `(V, embed)`, trained in weight space.
    embedding: Option<Var>,
    tokenizer: Option<TextTokenizer>,
    optimizer: Adam,
    order_rng: ChaCha8Rng,
    order: Vec<u32>,
    cursor: usize,
    iteration: usize,
    iterations: usize,
    eval_every: usize,
    /// A language model's chunk length: it reads its streams window by window.
    window: Option<usize>,
    /// A language model's state after the last window, carried into the next.
    carry: Option<Vec<State<f32>>>,
    /// Tokens per byte of a language model's held-out text.
    valid_tokens_per_byte: Option<f64>,
    elapsed: Duration,
    data_sha256: String,
    best_test_accuracy: Option<f64>,
    summary: Option<String>,
}

/// How [`Trainer::run`] saves and when it stops early.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The checkpoint directory: saved at the end, every `save_every` iterations and
    /// on interruption, with the best evaluation so far in its `best/`.
    pub checkpoint: Option<PathBuf>,
    /// Iterations between saves (besides the end).
    pub save_every: Option<usize>,
    /// Set from elsewhere (a Ctrl-C handler) to stop after the current iteration.
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// What [`Trainer::run_with`] reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// An iteration finished with this minibatch loss.
    Step {
        /// Iterations completed.
        iteration: usize,
        /// The minibatch loss.
        loss: f64,
    },
    /// An evaluation.
    Evaluated(&'a Metrics),
    /// The run was saved into this directory.
    Saved(&'a Path),
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// All iterations done; the last evaluation.
    Finished(Metrics),
    /// Stopped by [`RunOptions::interrupt`] after this many iterations (saved).
    Interrupted(usize),
}

impl Trainer {
    /// Generates (or reads) the data and builds the network of a resolved task.
    pub fn new(config: &RunConfig) -> Result<Self> {
        Self::with_tokenizer(config, None)
    }

    /// [`Trainer::new`] for a text task whose tokenizer is given (a resumed run's).
    pub fn with_tokenizer(config: &RunConfig, tokenizer: Option<TextTokenizer>) -> Result<Self> {
        let device = Device::Cpu;
        let (train, test, text) = match config.task.build(config.delay, config.seq_len) {
            Some(task) => {
                let train = tasks::generate(
                    task.as_ref(),
                    config.train_size,
                    derive_seed(config.seed, 1),
                );
                let test =
                    tasks::generate(task.as_ref(), config.test_size, derive_seed(config.seed, 2));
                (Dataset::from_set(&train), Dataset::from_set(&test), None)
            }
            None if config.task == TaskKind::Lm => {
                let data = lm::prepare(config, tokenizer)?;
                let train = Dataset::streams(&data.train.ids, config.batch);
                let test = Dataset::streams(&data.valid.ids, config.batch);
                // The first rsl tokens of the first rbs streams.
                let prefixes = if config.rbs <= train.count && config.rsl <= train.len {
                    train.head(config.rbs).window(0, config.rsl)
                } else {
                    Dataset::empty()
                };
                let parts = TextParts {
                    tokenizer: data.tokenizer,
                    summary: data.summary,
                    prefixes,
                    valid_tokens_per_byte: Some(data.valid.tokens_per_byte()),
                };
                (train, test, Some(parts))
            }
            None => {
                let data = classify::prepare(config, tokenizer)?;
                let parts = TextParts {
                    tokenizer: data.tokenizer,
                    summary: data.summary,
                    prefixes: data.prefixes,
                    valid_tokens_per_byte: None,
                };
                (data.train, data.test, Some(parts))
            }
        };
        let data_sha256 = {
            let mut bytes = Vec::new();
            for set in [&train, &test] {
                match &set.inputs {
                    Inputs::Dense { values, .. } => {
                        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()))
                    }
                    Inputs::Tokens(ids) => bytes.extend(ids.iter().flat_map(|v| v.to_le_bytes())),
                }
                bytes.extend(set.labels.iter().flat_map(|v| v.to_le_bytes()));
            }
            checkpoint::sha256(&bytes)
        };
        let mut init_rng = ChaCha8Rng::seed_from_u64(derive_seed(config.seed, 3));
        let shape = match &text {
            Some(parts) => config.shape_with_vocabulary(parts.tokenizer.embedding_rows()),
            None => config.shape(),
        };
        let embedding = match &text {
            Some(data) => {
                // Keras' default for an embedding: uniform in ±0.05.
                let rows = data.tokenizer.embedding_rows();
                let values: Vec<f32> = (0..rows * shape.n_in)
                    .map(|_| init_rng.random_range(-0.05..0.05))
                    .collect();
                Some(Var::from_vec(values, (rows, shape.n_in), &device)?)
            }
            None => None,
        };
        let model: Box<dyn Model> = match config.space {
            Space::Target => {
                let (rsl, rbs, n_in) = (config.rsl, config.rbs, shape.n_in);
                let values = match (&text, &embedding) {
                    // X̄ of a recall task: the first rbs training sequences, first rsl
                    // steps (time-major, so a prefix of the selection).
                    (None, _) => {
                        let head = train.head(rbs);
                        head.vectors(None)[..rsl * rbs * n_in].to_vec()
                    }
                    (Some(data), Some(table)) => match text_config(config).realisation_inputs {
                        RealisationInputs::Noise => (0..rsl * rbs * n_in)
                            .map(|_| init_rng.random_range(-1.0f32..=1.0))
                            .collect(),
                        RealisationInputs::Prefixes => {
                            let table = table.flatten_all()?.to_vec1::<f32>()?;
                            data.prefixes.vectors(Some((&table, n_in)))
                        }
                    },
                    (Some(_), None) => unreachable!("a text task has an embedding"),
                };
                if values.len() != rsl * rbs * n_in {
                    bail!(
                        "realisation_inputs prefixes: {rbs} training texts (or streams) of {rsl} tokens are needed; there are {} of {}",
                        train.count,
                        train.len
                    );
                }
                let inputs = Tensor::from_vec(values, (rsl, rbs, n_in), &device)?;
                let target = target_config(config, &shape);
                Box::new(TargetRnn::new(&inputs, target, &mut init_rng)?)
            }
            Space::Weight => Box::new(WeightRnn::new(&shape, &mut init_rng, &device)?),
        };
        let mut params = model.parameters();
        params.extend(embedding.clone());
        let optimizer = Adam::new(params, config.lr);
        // A language model reads its streams in windows of seq_len steps.
        let window = (config.task == TaskKind::Lm).then_some(config.seq_len);
        let per_epoch = match window {
            Some(w) => train.len.div_ceil(w),
            None => train.count / config.batch,
        };
        let (iterations, eval_every) = match &config.text {
            Some(t) => (
                t.epochs * per_epoch,
                if config.eval_every == 0 {
                    per_epoch
                } else {
                    config.eval_every
                },
            ),
            None => (config.iterations, config.eval_every),
        };
        let train_eval = match (&text, window) {
            (Some(_), Some(_)) => {
                train.window(0, train.len.min((LM_TRAIN_EVAL / train.count).max(1)))
            }
            (Some(_), None) if train.count > TEXT_TRAIN_EVAL => {
                let idx: Vec<u32> = (0..TEXT_TRAIN_EVAL)
                    .map(|i| (i * train.count / TEXT_TRAIN_EVAL) as u32)
                    .collect();
                train.select(&idx)
            }
            _ => train.clone(),
        };
        Ok(Trainer {
            config: config.clone(),
            order: (0..train.count as u32).collect(),
            cursor: if window.is_some() { 0 } else { train.count },
            order_rng: ChaCha8Rng::seed_from_u64(derive_seed(config.seed, 4)),
            train,
            test,
            train_eval,
            model,
            embedding,
            summary: text.as_ref().map(|d| d.summary.clone()),
            valid_tokens_per_byte: text.as_ref().and_then(|d| d.valid_tokens_per_byte),
            tokenizer: text.map(|d| d.tokenizer),
            optimizer,
            iteration: 0,
            iterations,
            eval_every,
            window,
            carry: None,
            elapsed: Duration::ZERO,
            data_sha256,
            best_test_accuracy: None,
        })
    }

    /// Total iterations the run trains for.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// Iterations in one pass over the training set.
    pub fn iterations_per_epoch(&self) -> usize {
        match self.window {
            Some(w) => self.train.len.div_ceil(w),
            None => self.train.count / self.config.batch,
        }
        .max(1)
    }

    /// Tokens (or steps of sequences) trained on in the first `iteration`
    /// iterations.
    fn tokens_through(&self, iteration: usize) -> usize {
        match self.window {
            Some(w) => {
                let per_epoch = self.iterations_per_epoch();
                let (epochs, k) = (iteration / per_epoch, iteration % per_epoch);
                (epochs * self.train.len + (k * w).min(self.train.len)) * self.train.count
            }
            None => iteration * self.config.batch * self.train.len,
        }
    }

    /// What a text task read (corpus, sizes, tokenizer), for the log.
    pub fn summary(&self) -> Option<&str> {
        self.summary.as_deref()
    }

    /// A text task's tokenizer.
    pub fn tokenizer(&self) -> Option<&TextTokenizer> {
        self.tokenizer.as_ref()
    }

    /// The resolved task being trained.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Saves the run into `dir` (atomically; see [`checkpoint`]).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let (config, model, optimizer) = self.checkpoint_parts()?;
        let tokenizer = match &self.tokenizer {
            Some(t) => Some(
                t.inner()
                    .to_string(true)
                    .map_err(|e| anyhow!("cannot serialise the tokenizer: {e}"))?,
            ),
            None => None,
        };
        checkpoint::write(
            dir,
            &config,
            &model,
            &optimizer,
            tokenizer.as_deref().map(str::as_bytes),
        )
    }

    /// What a checkpoint of the run holds: `config.json`, then the tensors of
    /// `model.safetensors` and of `optimizer.safetensors`.
    #[allow(clippy::type_complexity)]
    pub fn checkpoint_parts(
        &self,
    ) -> Result<(
        CheckpointConfig,
        Vec<(String, Tensor)>,
        Vec<(String, Tensor)>,
    )> {
        let config = CheckpointConfig {
            format: checkpoint::FORMAT.into(),
            crate_version: env!("CARGO_PKG_VERSION").into(),
            task: self.config.clone(),
            data_sha256: self.data_sha256.clone(),
            iteration: self.iteration,
            elapsed_s: self.elapsed.as_secs_f64(),
            optimizer_step: self.optimizer.steps(),
            best_test_accuracy: self.best_test_accuracy,
            batch_order: BatchOrder {
                order: self.order.clone(),
                cursor: self.cursor,
                rng_word_pos: self.order_rng.get_word_pos().to_string(),
            },
            files: Default::default(),
        };
        let names: Vec<String> = self
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let (first, second) = self.optimizer.moments();
        let mut moments = Vec::new();
        for ((name, m), v) in names.iter().zip(first).zip(second) {
            moments.push((
                format!("adam.first.{name}"),
                Tensor::from_slice(m, m.len(), &Device::Cpu)?,
            ));
            moments.push((
                format!("adam.second.{name}"),
                Tensor::from_slice(v, v.len(), &Device::Cpu)?,
            ));
        }
        if let Some(carry) = &self.carry {
            for (l, state) in carry.iter().enumerate() {
                for (part, values) in [("h", &state.h), ("c", &state.c)] {
                    if !values.is_empty() {
                        moments.push((
                            format!("carry.layer.{l}.{part}"),
                            Tensor::from_slice(values, values.len(), &Device::Cpu)?,
                        ));
                    }
                }
            }
        }
        let mut tensors = self.model.tensors()?;
        if let Some(e) = &self.embedding {
            tensors.push((EMBEDDING.into(), e.as_tensor().clone()));
        }
        Ok((config, tensors, moments))
    }

    /// Every trainable parameter with its checkpoint name, in the optimiser's order:
    /// the network's, then the embedding.
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut named = self.model.named_parameters();
        if let Some(e) = &self.embedding {
            named.push((EMBEDDING.into(), e.clone()));
        }
        named
    }

    /// A fresh run of `config` that starts from the parameters of the checkpoint
    /// in `dir` (fine-tuning): its targets and realisation inputs (or weights), its
    /// embedding and, for a text task, its tokenizer. The output layer is taken too
    /// when the task kind is the same; a classifier started from a language model
    /// gets a fresh output layer (projected, in target space). A checkpoint of
    /// another network (depth, cell, widths, space, realisation batch) is refused,
    /// naming the file and the tensor.
    pub fn from_checkpoint(config: &RunConfig, dir: &Path) -> Result<Self> {
        let saved = checkpoint::read(dir)?;
        let source = &saved.config.task;
        if source.text.is_some() != config.text.is_some() {
            bail!(
                "{}: a checkpoint of task {} cannot start task {}",
                dir.display(),
                source.task.name(),
                config.task.name()
            );
        }
        let tokenizer = match config.text {
            Some(_) => Some(TextTokenizer::load(
                &dir.join(checkpoint::TOKENIZER_FILE).to_string_lossy(),
            )?),
            None => None,
        };
        let mut trainer = Trainer::with_tokenizer(config, tokenizer)?;
        let model_file = dir.join(checkpoint::MODEL_FILE);
        let keep_output = source.task == config.task;
        let depth = trainer.model.shape().layers.len();
        let named = trainer.model.named_parameters();
        for (k, (name, var)) in named.iter().enumerate() {
            if k == depth && !keep_output {
                continue;
            }
            let value = checkpoint::tensor(&saved.model, &model_file, name, var.dims())?;
            var.set(&value.to_dtype(DType::F32)?)?;
        }
        if let Some(e) = &trainer.embedding {
            e.set(&checkpoint::tensor(
                &saved.model,
                &model_file,
                EMBEDDING,
                e.dims(),
            )?)?;
        }
        if config.space == Space::Target {
            // The targets mean what they mean on the X̄ they were trained against.
            let fixed = trainer.model.fixed_tensors();
            let (_, inputs) = &fixed[0];
            let inputs = checkpoint::tensor(
                &saved.model,
                &model_file,
                crate::target::REALISATION_INPUTS,
                inputs.dims(),
            )?;
            let target = target_config(config, trainer.model.shape());
            let net = TargetRnn::from_targets(
                &inputs,
                named.into_iter().map(|(_, v)| v).collect(),
                target,
            )?;
            if !keep_output {
                net.project_output()?;
            }
            trainer.model = Box::new(net);
        }
        let params = trainer
            .named_parameters()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        trainer.optimizer = Adam::new(params, config.lr);
        Ok(trainer)
    }

    /// Continues a saved run: the same data (checked by hash), parameters, optimiser
    /// state, minibatch order and clock. `length` may raise the iterations (text
    /// tasks: the epochs) to train longer.
    pub fn resume(dir: &Path, length: Option<usize>) -> Result<Self> {
        let saved = checkpoint::read(dir)?;
        let mut config = saved.config.task.clone();
        if let Some(n) = length {
            match &mut config.text {
                Some(text) => text.epochs = n,
                None => config.iterations = n,
            }
        }
        let tokenizer = match config.text {
            Some(_) => Some(TextTokenizer::load(
                &dir.join(checkpoint::TOKENIZER_FILE).to_string_lossy(),
            )?),
            None => None,
        };
        let mut trainer = Trainer::with_tokenizer(&config, tokenizer)?;
        trainer.restore(dir, &saved)?;
        Ok(trainer)
    }

    fn restore(&mut self, dir: &Path, saved: &Checkpoint) -> Result<()> {
        let state = &saved.config;
        if state.data_sha256 != self.data_sha256 {
            bail!(
                "{}: the data this checkpoint was trained on differs from what its task generates here",
                dir.join(checkpoint::CONFIG_FILE).display()
            );
        }
        let model_file = dir.join(checkpoint::MODEL_FILE);
        let optimizer_file = dir.join(checkpoint::OPTIMIZER_FILE);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for (name, var) in self.named_parameters() {
            let value = checkpoint::tensor(&saved.model, &model_file, &name, var.dims())?;
            var.set(&value.to_dtype(DType::F32)?)?;
            let n = [var.elem_count()];
            for (prefix, into) in [("first", &mut first), ("second", &mut second)] {
                let t = checkpoint::tensor(
                    &saved.optimizer,
                    &optimizer_file,
                    &format!("adam.{prefix}.{name}"),
                    &n,
                )?;
                into.push(t.to_vec1::<f32>()?);
            }
        }
        self.optimizer
            .restore(state.optimizer_step, first, second)?;
        // A language model resumed mid-epoch continues from the state it carried.
        let shape = self.model.shape().clone();
        let carry: Option<Vec<State<f32>>> = (0..shape.layers.len())
            .map(|l| {
                let get = |part: &str| {
                    saved
                        .optimizer
                        .get(&format!("carry.layer.{l}.{part}"))
                        .map(|t| t.to_vec1::<f32>())
                        .transpose()
                };
                Ok(match get("h")? {
                    Some(h) => Some(State {
                        h,
                        c: get("c")?.unwrap_or_default(),
                    }),
                    None => None,
                })
            })
            .collect::<candle_core::Result<Option<Vec<_>>>>()?;
        if let Some(states) = &carry {
            let fits = states.iter().zip(&shape.layers).all(|(s, &h)| {
                s.h.len() == self.train.count * h
                    && (s.c.is_empty() || s.c.len() == self.train.count * h)
            });
            if !fits {
                bail!(
                    "{}: the carried state does not fit this network",
                    optimizer_file.display()
                );
            }
        }
        self.carry = carry;
        let order = &state.batch_order;
        let mut sorted = order.order.clone();
        sorted.sort_unstable();
        if sorted != (0..self.train.count as u32).collect::<Vec<_>>()
            || (self.window.is_none() && order.cursor > order.order.len())
        {
            bail!(
                "{}: batch_order is not a permutation of the training set",
                dir.join(checkpoint::CONFIG_FILE).display()
            );
        }
        let word_pos: u128 = order.rng_word_pos.parse().map_err(|_| {
            anyhow!(
                "{}: batch_order.rng_word_pos is not a number",
                dir.join(checkpoint::CONFIG_FILE).display()
            )
        })?;
        self.order.clone_from(&order.order);
        self.cursor = order.cursor;
        self.order_rng.set_word_pos(word_pos);
        self.iteration = state.iteration;
        self.elapsed = Duration::from_secs_f64(state.elapsed_s.max(0.0));
        self.best_test_accuracy = state.best_test_accuracy;
        Ok(())
    }

    /// Iterations completed.
    pub fn iteration(&self) -> usize {
        self.iteration
    }

    /// The network being trained.
    pub fn model(&self) -> &dyn Model {
        self.model.as_ref()
    }

    /// The next minibatch: `None` for the whole training set when `batch` is its
    /// size, else the next slice of a fresh shuffle each epoch.
    fn next_batch(&mut self) -> Option<Dataset> {
        if let Some(w) = self.window {
            // A language model: the next window of every stream; a new epoch starts
            // the streams again from zero state.
            if self.cursor * w >= self.train.len {
                self.cursor = 0;
                self.carry = None;
            }
            let t0 = self.cursor * w;
            self.cursor += 1;
            return Some(self.train.window(t0, (t0 + w).min(self.train.len)));
        }
        let batch = self.config.batch;
        if batch == self.train.count {
            return None;
        }
        if self.cursor + batch > self.order.len() {
            self.order.shuffle(&mut self.order_rng);
            self.cursor = 0;
        }
        let indices = &self.order[self.cursor..self.cursor + batch];
        self.cursor += batch;
        Some(self.train.select(indices))
    }

    /// One training iteration; returns the minibatch loss. A non-finite loss is an
    /// error naming the iteration, and leaves the parameters as they were.
    pub fn step(&mut self) -> Result<f64> {
        let start = Instant::now();
        let selected = self.next_batch();
        self.reset_some_streams();
        let batch = selected.as_ref().unwrap_or(&self.train);
        // The whole training set is the realisation batch itself when X̄ is all of
        // it: the realisation pass is then the forward pass.
        let shared = selected.is_none()
            && self.config.space == Space::Target
            && self.embedding.is_none()
            && (self.config.rsl, self.config.rbs) == (batch.len, batch.count);
        let table = self.embedding_table()?;
        let vectors = match (&batch.inputs, shared) {
            (Inputs::Dense { .. }, true) => Vec::new(),
            _ => batch.vectors(table.as_ref().map(|(t, w)| (t.as_slice(), *w))),
        };
        let fused_batch = fused::Batch {
            start: self.carry.as_deref(),
            ..batch.batch(&vectors)
        };
        let result = self
            .model
            .batch_gradients(&fused_batch, shared)
            .map_err(|e| {
                anyhow!(
                    "training stopped at iteration {}: {e:#}",
                    self.iteration + 1
                )
            })?;
        let mut grads = result.grads;
        if let (Inputs::Tokens(ids), Some((_, width)), Some(e)) =
            (&batch.inputs, &table, &self.embedding)
        {
            let grad_vectors = result
                .inputs
                .as_ref()
                .ok_or_else(|| anyhow!("the network returned no input gradient"))?;
            grads.push(data::embed_backward(grad_vectors, ids, e.dims()[0], *width));
        }
        self.optimizer.step(&grads)?;
        if self.window.is_some() {
            self.carry = Some(result.end);
        }
        self.iteration += 1;
        self.elapsed += start.elapsed();
        Ok(result.loss)
    }

    /// Zeroes the carried state of the streams whose draw for this iteration falls
    /// under `state_reset`, so that a language model also learns to start from zero
    /// state (as generation does). The draw is a hash of the seed, the iteration
    /// and the stream: no generator state, so a resumed run draws the same.
    fn reset_some_streams(&mut self) {
        let p = self.config.text.as_ref().map_or(0.0, |t| t.state_reset);
        let (Some(carry), true) = (&mut self.carry, p > 0.0) else {
            return;
        };
        let streams = self.train.count;
        let base = derive_seed(self.config.seed, 8) ^ self.iteration as u64;
        for s in 0..streams {
            let draw = derive_seed(base, s as u64) as f64 / u64::MAX as f64;
            if draw < p {
                for state in carry.iter_mut() {
                    let h = state.h.len() / streams;
                    state.h[s * h..(s + 1) * h].fill(0.0);
                    if !state.c.is_empty() {
                        state.c[s * h..(s + 1) * h].fill(0.0);
                    }
                }
            }
        }
    }

    /// The embedding's values and width, for a text task.
    fn embedding_table(&self) -> Result<Option<(Vec<f32>, usize)>> {
        Ok(match &self.embedding {
            Some(e) => Some((e.flatten_all()?.to_vec1()?, e.dims()[1])),
            None => None,
        })
    }

    /// Loss and accuracy on the training and test sets with the current weights.
    pub fn evaluate(&self) -> Result<Metrics> {
        let weights = self.model.weights()?;
        let shape = self.model.shape();
        let table = self.embedding_table()?;
        let table = table.as_ref().map(|(t, w)| (t.as_slice(), *w));
        let window = self.window.map(|_| EVAL_WINDOW);
        let (train_loss, train_accuracy) =
            evaluate(&weights, table, &self.train_eval, shape, window)?;
        let (test_loss, test_accuracy) = evaluate(&weights, table, &self.test, shape, window)?;
        let elapsed_s = self.elapsed.as_secs_f64();
        let lm = self.window.is_some();
        Ok(Metrics {
            iteration: self.iteration,
            epoch: self.iteration as f64 / self.iterations_per_epoch() as f64,
            val_loss: lm.then_some(test_loss),
            val_perplexity: lm.then(|| test_loss.exp()),
            val_bits_per_byte: self
                .valid_tokens_per_byte
                .map(|r| test_loss / std::f64::consts::LN_2 * r),
            tokens_per_s: self
                .config
                .text
                .as_ref()
                .map(|_| self.tokens_through(self.iteration) as f64 / elapsed_s.max(1e-9)),
            train_loss,
            train_accuracy,
            test_loss,
            test_accuracy,
            elapsed_s,
            ms_per_iteration: 1e3 * elapsed_s / self.iteration.max(1) as f64,
            space: self.config.space,
        })
    }

    /// Trains to the configured number of iterations, evaluating at the start, every
    /// `eval_every` iterations and at the end; each evaluation goes to `on_eval`.
    pub fn run(&mut self, mut on_eval: impl FnMut(&Metrics) -> Result<()>) -> Result<Metrics> {
        let on_event = |event: Event| match event {
            Event::Evaluated(m) => on_eval(m),
            _ => Ok(()),
        };
        match self.run_with(&RunOptions::default(), on_event)? {
            Outcome::Finished(last) => Ok(last),
            Outcome::Interrupted(_) => unreachable!("no interrupt flag was given"),
        }
    }

    /// [`Trainer::run`] with checkpoints and interruption (see [`RunOptions`]).
    pub fn run_with(
        &mut self,
        options: &RunOptions,
        mut on_event: impl FnMut(Event) -> Result<()>,
    ) -> Result<Outcome> {
        let metrics_file = options
            .checkpoint
            .as_ref()
            .map(|d| d.join(checkpoint::METRICS_FILE));
        let _lock = match &options.checkpoint {
            Some(dir) => Some(checkpoint::lock(dir)?),
            None => None,
        };
        if let Some(dir) = &options.checkpoint {
            // Rows logged after the last save belong to iterations a resume repeats.
            truncate_metrics(&dir.join(checkpoint::METRICS_FILE), self.iteration)?;
        }
        let evaluated = |trainer: &mut Trainer, m: &Metrics| -> Result<()> {
            if let Some(path) = &metrics_file {
                append_row(path, m)?;
            }
            if let Some(dir) = &options.checkpoint
                && trainer
                    .best_test_accuracy
                    .is_none_or(|best| m.test_accuracy > best)
            {
                trainer.best_test_accuracy = Some(m.test_accuracy);
                trainer.save(&dir.join(checkpoint::BEST_DIR))?;
            }
            Ok(())
        };
        // A fresh run is evaluated before it starts; a resumed one was, in its first part.
        let mut last = None;
        if self.iteration == 0 {
            let m = self.evaluate()?;
            evaluated(self, &m)?;
            on_event(Event::Evaluated(&m))?;
            last = Some(m);
        }
        while self.iteration < self.iterations {
            let loss = self.step()?;
            on_event(Event::Step {
                iteration: self.iteration,
                loss,
            })?;
            let done = self.iteration == self.iterations;
            if self.iteration.is_multiple_of(self.eval_every) || done {
                let m = self.evaluate()?;
                evaluated(self, &m)?;
                on_event(Event::Evaluated(&m))?;
                last = Some(m);
            }
            let interrupted = options
                .interrupt
                .as_ref()
                .is_some_and(|f| f.load(Ordering::SeqCst));
            let due = options
                .save_every
                .is_some_and(|n| self.iteration.is_multiple_of(n));
            if let Some(dir) = &options.checkpoint
                && (done || due || interrupted)
            {
                self.save(dir)?;
                on_event(Event::Saved(dir))?;
            }
            if interrupted && !done {
                return Ok(Outcome::Interrupted(self.iteration));
            }
        }
        // Resumed at its end: nothing trained, evaluate where it stands.
        let last = match last {
            Some(m) => m,
            None => self.evaluate()?,
        };
        Ok(Outcome::Finished(last))
    }
}

/// Appends one metrics row to a JSON-lines file.
pub fn append_row(path: &Path, row: &Metrics) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    writeln!(file, "{}", serde_json::to_string(row)?)
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Drops the rows of a metrics file past `iteration` (atomically).
fn truncate_metrics(path: &Path, iteration: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<Metrics>(l).is_ok_and(|m| m.iteration <= iteration))
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.len() != text.len() {
        checkpoint::write_atomic(path, kept.as_bytes())?;
    }
    Ok(())
}

/// Loss and accuracy of a network with these weights (every recurrent layer, then
/// the output layer, and a text task's embedding table and width) on a whole set.
///
/// Many sequences are run in groups, so that embedded text never needs more than a
/// group's vectors in memory; with `window`, long sequences (a language model's
/// streams) are run that many steps at a time with the state carried across,
/// which gives the same figures as one pass.
pub fn evaluate(
    weights: &[Vec<f32>],
    embedding: Option<(&[f32], usize)>,
    data: &Dataset,
    shape: &Shape,
    window: Option<usize>,
) -> Result<(f64, f64)> {
    const GROUP: usize = 1000;
    let (mut loss, mut right) = (0.0, 0usize);
    for start in (0..data.count).step_by(GROUP) {
        let end = (start + GROUP).min(data.count);
        // Copies are made only of what is run in parts.
        let group = if (start, end) == (0, data.count) {
            Cow::Borrowed(data)
        } else {
            Cow::Owned(data.select(&(start as u32..end as u32).collect::<Vec<_>>()))
        };
        let step = window.unwrap_or(group.len).max(1);
        let mut carry: Option<Vec<State<f32>>> = None;
        for t0 in (0..group.len).step_by(step) {
            let t1 = (t0 + step).min(group.len);
            let part = if (t0, t1) == (0, group.len) {
                Cow::Borrowed(group.as_ref())
            } else {
                Cow::Owned(group.window(t0, t1))
            };
            let vectors = part.vectors(embedding);
            let batch = fused::Batch {
                start: carry.as_deref(),
                ..part.batch(&vectors)
            };
            let scored = fused::evaluate(weights, &batch, shape)?;
            loss += scored.loss * part.labels.len() as f64;
            right += scored.right;
            carry = Some(scored.end);
        }
    }
    let scored = data.labels.len().max(1) as f64;
    Ok((loss / scored, right as f64 / scored))
}

/// The target-space settings of a task for a network of this shape.
fn target_config(config: &RunConfig, shape: &Shape) -> TargetConfig {
    TargetConfig {
        shape: shape.clone(),
        lambda: config.lambda,
        target_std: config.target_std,
        realisation: config.realisation,
        output_weights: config.output_space == Space::Weight,
    }
}

/// The text settings of a resolved text task.
fn text_config(config: &RunConfig) -> &config::TextConfig {
    config.text.as_ref().expect("a text task has text settings")
}
