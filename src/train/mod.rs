//! The training loop: data to tensors, minibatches, the optimiser, evaluation and
//! metrics. Prints nothing: the caller gets every evaluation as a [`Metrics`] row.

pub mod adam;
pub mod config;

use crate::model::{Model, RnnWeights};
use crate::target::{TargetConfig, TargetRnn};
use crate::tasks::{self, SequenceSet};
use crate::weight::WeightRnn;
use adam::Adam;
use anyhow::Result;
use candle_core::{D, DType, Device, Tensor};
use config::{RunConfig, Space};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A fixed set of sequences as tensors.
pub struct Dataset {
    /// Inputs `(L, N, n_in)`.
    pub inputs: Tensor,
    /// Labels of the scored steps `(L - first_scored, N)`, u32.
    pub labels: Tensor,
    /// First scored step.
    pub first_scored: usize,
}

impl Dataset {
    /// The tensors of a generated set.
    pub fn new(set: &SequenceSet, device: &Device) -> Result<Self> {
        let scored = set.len - set.first_scored;
        Ok(Dataset {
            inputs: Tensor::from_slice(&set.inputs, (set.len, set.count, set.n_in), device)?,
            labels: Tensor::from_slice(&set.labels, (scored, set.count), device)?,
            first_scored: set.first_scored,
        })
    }

    /// Number of sequences.
    pub fn count(&self) -> Result<usize> {
        Ok(self.inputs.dim(1)?)
    }

    /// The sequences at `indices`.
    pub fn select(&self, indices: &[u32]) -> Result<Dataset> {
        let idx = Tensor::from_slice(indices, indices.len(), self.inputs.device())?;
        Ok(Dataset {
            inputs: self.inputs.index_select(&idx, 1)?,
            labels: self.labels.index_select(&idx, 1)?,
            first_scored: self.first_scored,
        })
    }
}

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
    model: Box<dyn Model>,
    optimizer: Adam,
    order_rng: ChaCha8Rng,
    order: Vec<u32>,
    cursor: usize,
    iteration: usize,
    elapsed: Duration,
}

impl Trainer {
    /// Generates the data and builds the network of a resolved task.
    pub fn new(config: &RunConfig) -> Result<Self> {
        let device = Device::Cpu;
        let task = config.task.build(config.delay, config.seq_len);
        let train_set = tasks::generate(
            task.as_ref(),
            config.train_size,
            derive_seed(config.seed, 1),
        );
        let test_set =
            tasks::generate(task.as_ref(), config.test_size, derive_seed(config.seed, 2));
        let train = Dataset::new(&train_set, &device)?;
        let test = Dataset::new(&test_set, &device)?;
        let mut init_rng = ChaCha8Rng::seed_from_u64(derive_seed(config.seed, 3));
        let model: Box<dyn Model> = match config.space {
            Space::Target => {
                // X̄: the first rbs training sequences, first rsl steps. With rbs = N
                // and rsl = L this is the training tensor itself (same id), which
                // lets the full-batch forward pass share the realisation pass.
                let inputs = train
                    .inputs
                    .narrow(0, 0, config.rsl)?
                    .narrow(1, 0, config.rbs)?;
                let target = TargetConfig {
                    hidden: config.hidden,
                    classes: task.classes(),
                    lambda: config.lambda,
                    target_std: config.target_std,
                    realisation: config.realisation,
                };
                Box::new(TargetRnn::new(&inputs, target, &mut init_rng)?)
            }
            Space::Weight => Box::new(WeightRnn::new(
                task.n_in(),
                config.hidden,
                task.classes(),
                &mut init_rng,
                &device,
            )?),
        };
        let optimizer = Adam::new(model.parameters(), config.lr);
        Ok(Trainer {
            config: config.clone(),
            order: (0..config.train_size as u32).collect(),
            cursor: config.train_size,
            order_rng: ChaCha8Rng::seed_from_u64(derive_seed(config.seed, 4)),
            train,
            test,
            model,
            optimizer,
            iteration: 0,
            elapsed: Duration::ZERO,
        })
    }

    /// Iterations completed.
    pub fn iteration(&self) -> usize {
        self.iteration
    }

    /// The network being trained.
    pub fn model(&self) -> &dyn Model {
        self.model.as_ref()
    }

    /// The next minibatch: the whole training set when `batch` is its size, else the
    /// next slice of a fresh shuffle each epoch.
    fn next_batch(&mut self) -> Result<Option<Dataset>> {
        let batch = self.config.batch;
        if batch == self.config.train_size {
            return Ok(None);
        }
        if self.cursor + batch > self.order.len() {
            self.order.shuffle(&mut self.order_rng);
            self.cursor = 0;
        }
        let indices = self.order[self.cursor..self.cursor + batch].to_vec();
        self.cursor += batch;
        Ok(Some(self.train.select(&indices)?))
    }

    /// One training iteration; returns the minibatch loss. A non-finite loss is an
    /// error naming the iteration, and leaves the parameters as they were.
    pub fn step(&mut self) -> Result<f64> {
        let start = Instant::now();
        let selected = self.next_batch()?;
        let batch = selected.as_ref().unwrap_or(&self.train);
        let result = self
            .model
            .loss_and_gradients(&batch.inputs, &batch.labels, batch.first_scored)
            .map_err(|e| {
                anyhow::anyhow!(
                    "training stopped at iteration {}: {e:#}",
                    self.iteration + 1
                )
            })?;
        let value = result.loss;
        self.optimizer.step(&result.grads)?;
        self.iteration += 1;
        self.elapsed += start.elapsed();
        Ok(value)
    }

    /// Loss and accuracy on the training and test sets with the current weights.
    pub fn evaluate(&self) -> Result<Metrics> {
        let weights = self.model.weights()?;
        let (train_loss, train_accuracy) = evaluate(&weights, &self.train)?;
        let (test_loss, test_accuracy) = evaluate(&weights, &self.test)?;
        let elapsed_s = self.elapsed.as_secs_f64();
        Ok(Metrics {
            iteration: self.iteration,
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
        let mut last = self.evaluate()?;
        if self.iteration == 0 {
            on_eval(&last)?;
        }
        while self.iteration < self.config.iterations {
            self.step()?;
            if self.iteration.is_multiple_of(self.config.eval_every)
                || self.iteration == self.config.iterations
            {
                last = self.evaluate()?;
                on_eval(&last)?;
            }
        }
        Ok(last)
    }
}

/// Loss and accuracy of `weights` on a whole set.
pub fn evaluate(weights: &RnnWeights, data: &Dataset) -> Result<(f64, f64)> {
    let logits = weights.logits(&data.inputs, data.first_scored)?;
    let (loss, accuracy) = loss_and_accuracy(&logits, &data.labels)?;
    Ok((loss.to_scalar::<f32>()? as f64, accuracy))
}
