//! Long-sequence recall tasks: pure data generators (inputs and labels), knowing
//! nothing of networks.
//!
//! Every task is a classification at a suffix of steps: steps `t ≥ first_scored`
//! carry a label, earlier steps are not scored. A new task is one file here
//! implementing [`Task`] and one arm in [`TaskKind`].

mod bit_adder;
mod copy;
mod delay_recall;
mod temporal_order;
mod xor;

pub use bit_adder::BitAdder;
pub use copy::Copy;
pub use delay_recall::DelayRecall;
pub use temporal_order::TemporalOrder;
pub use xor::Xor;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One generated sequence: `inputs[t]` is the input vector at step `t`, and
/// `labels[i]` the class at step `first_scored + i`.
pub struct Sample {
    /// Input vectors, one a step.
    pub inputs: Vec<Vec<f32>>,
    /// Classes of the scored steps.
    pub labels: Vec<u32>,
}

/// A recall task: a distribution over labelled sequences.
pub trait Task {
    /// Steps in a sequence.
    fn seq_len(&self) -> usize;
    /// Width of the input vector at each step.
    fn n_in(&self) -> usize;
    /// Number of output classes.
    fn classes(&self) -> usize;
    /// The first scored step; every later step is scored too.
    fn first_scored(&self) -> usize;
    /// Draws one sequence.
    fn sample(&self, rng: &mut ChaCha8Rng) -> Sample;
}

/// The task kinds a task file can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// Recall the bit seen `delay` steps ago (the paper's memorisation task).
    DelayRecall,
    /// XOR of the bit `delay` steps ago and the current bit.
    Xor,
    /// Serial binary addition of the stream with itself delayed by `delay`.
    BitAdder,
    /// Reproduce 10 symbols after `delay` blank steps (Arjovsky et al., 2016).
    Copy,
    /// Classify the order of two marker symbols (Hochreiter & Schmidhuber, 1997).
    TemporalOrder,
    /// Classify texts of a corpus (sentiment: IMDB, movie-review sentences, your own).
    Classify,
    /// Language modelling: predict every next token of a corpus.
    Lm,
}

impl TaskKind {
    /// Every kind, in the order `tsrnn tasks` lists them.
    pub const ALL: [TaskKind; 7] = [
        TaskKind::DelayRecall,
        TaskKind::Xor,
        TaskKind::BitAdder,
        TaskKind::Copy,
        TaskKind::TemporalOrder,
        TaskKind::Classify,
        TaskKind::Lm,
    ];

    /// The name used in task files.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::DelayRecall => "delay-recall",
            TaskKind::Xor => "xor",
            TaskKind::BitAdder => "bit-adder",
            TaskKind::Copy => "copy",
            TaskKind::TemporalOrder => "temporal-order",
            TaskKind::Classify => "classify",
            TaskKind::Lm => "lm",
        }
    }

    /// One line on what the task asks.
    pub fn summary(self) -> &'static str {
        match self {
            TaskKind::DelayRecall => {
                "output the input bit from `delay` steps ago (label b[t-d], t >= d)"
            }
            TaskKind::Xor => "output b[t-d] XOR b[t] (t >= d)",
            TaskKind::BitAdder => {
                "output the sum bit of adding streams b[t-d] and b[t] serially, carry kept (t >= d)"
            }
            TaskKind::Copy => {
                "read 10 symbols of 8, wait `delay` blank steps, then reproduce them (scored on the 10 recall steps)"
            }
            TaskKind::TemporalOrder => {
                "classify the order (XX, XY, YX, YY) of two markers hidden among distractors; label at the last step"
            }
            TaskKind::Classify => {
                "classify the texts of a corpus (tokenised, last seq_len tokens, label at the last step)"
            }
            TaskKind::Lm => {
                "predict the next token of a corpus, read as `batch` streams in chunks of seq_len with the state carried"
            }
        }
    }

    /// Whether the kind is parameterised by a delay.
    pub fn uses_delay(self) -> bool {
        !matches!(
            self,
            TaskKind::TemporalOrder | TaskKind::Classify | TaskKind::Lm
        )
    }

    /// Whether the kind reads a text corpus (rather than generating its data).
    pub fn is_text(self) -> bool {
        matches!(self, TaskKind::Classify | TaskKind::Lm)
    }

    /// The default delay, where the kind has one.
    pub fn default_delay(self) -> Option<usize> {
        match self {
            TaskKind::TemporalOrder | TaskKind::Classify | TaskKind::Lm => None,
            TaskKind::Copy => Some(50),
            _ => Some(20),
        }
    }

    /// The default sequence length for a delay (`d + 50` for the paper's tasks).
    pub fn default_seq_len(self, delay: usize) -> usize {
        match self {
            TaskKind::DelayRecall | TaskKind::Xor | TaskKind::BitAdder => delay + 50,
            TaskKind::Copy => Copy::seq_len_for(delay),
            TaskKind::TemporalOrder => 100,
            TaskKind::Classify => 500,
            TaskKind::Lm => 100,
        }
    }

    /// Whether the sequence length is free, or fixed by the delay.
    pub fn seq_len_is_free(self) -> bool {
        !matches!(self, TaskKind::Copy)
    }

    /// The smallest sequence length the kind accepts for a delay.
    pub fn min_seq_len(self, delay: usize) -> usize {
        match self {
            TaskKind::TemporalOrder => TemporalOrder::MIN_LEN,
            TaskKind::Classify | TaskKind::Lm => 1,
            TaskKind::Copy => Copy::seq_len_for(delay),
            _ => delay + 1,
        }
    }

    /// The default hidden size (`delay + 3` for recall, `+ 2` more for xor and the
    /// adder, as in the paper's experiments).
    pub fn default_hidden(self, delay: usize) -> usize {
        match self {
            TaskKind::DelayRecall => delay + 3,
            TaskKind::Xor | TaskKind::BitAdder => delay + 5,
            TaskKind::Copy => 64,
            TaskKind::TemporalOrder => 32,
            TaskKind::Classify => 100,
            TaskKind::Lm => 256,
        }
    }

    /// The generator of a kind with these parameters (checked beforehand by the
    /// caller); `None` for text kinds, whose data is read from a corpus.
    pub fn build(self, delay: usize, seq_len: usize) -> Option<Box<dyn Task + Send + Sync>> {
        Some(match self {
            TaskKind::DelayRecall => Box::new(DelayRecall {
                delay,
                len: seq_len,
            }),
            TaskKind::Xor => Box::new(Xor {
                delay,
                len: seq_len,
            }),
            TaskKind::BitAdder => Box::new(BitAdder {
                delay,
                len: seq_len,
            }),
            TaskKind::Copy => Box::new(Copy { delay }),
            TaskKind::TemporalOrder => Box::new(TemporalOrder { len: seq_len }),
            TaskKind::Classify | TaskKind::Lm => return None,
        })
    }
}

/// A fixed set of sequences, stored time-major as the networks read them.
#[derive(Clone, Debug)]
pub struct SequenceSet {
    /// Inputs, `(len, count, n_in)` row-major.
    pub inputs: Vec<f32>,
    /// Labels of the scored steps, `(len - first_scored, count)` row-major.
    pub labels: Vec<u32>,
    /// Steps in every sequence.
    pub len: usize,
    /// Number of sequences.
    pub count: usize,
    /// Input width.
    pub n_in: usize,
    /// Output classes.
    pub classes: usize,
    /// First scored step.
    pub first_scored: usize,
}

/// Draws `count` sequences of `task` from `seed`: the same seed gives the same set.
pub fn generate(task: &dyn Task, count: usize, seed: u64) -> SequenceSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (len, n_in, first) = (task.seq_len(), task.n_in(), task.first_scored());
    let scored = len - first;
    let mut inputs = vec![0.0; len * count * n_in];
    let mut labels = vec![0; scored * count];
    for n in 0..count {
        let sample = task.sample(&mut rng);
        debug_assert_eq!(sample.inputs.len(), len);
        debug_assert_eq!(sample.labels.len(), scored);
        for (t, x) in sample.inputs.iter().enumerate() {
            inputs[(t * count + n) * n_in..][..n_in].copy_from_slice(x);
        }
        for (i, &y) in sample.labels.iter().enumerate() {
            labels[i * count + n] = y;
        }
    }
    SequenceSet {
        inputs,
        labels,
        len,
        count,
        n_in,
        classes: task.classes(),
        first_scored: first,
    }
}

/// A uniformly random bit stream of `len` bits.
pub(crate) fn random_bits(rng: &mut ChaCha8Rng, len: usize) -> Vec<u32> {
    (0..len).map(|_| rng.random_range(0..2u32)).collect()
}

/// One-bit inputs: the bit itself as a float.
pub(crate) fn bit_inputs(bits: &[u32]) -> Vec<Vec<f32>> {
    bits.iter().map(|&b| vec![b as f32]).collect()
}

/// A one-hot vector of width `n`.
pub(crate) fn one_hot(i: usize, n: usize) -> Vec<f32> {
    let mut v = vec![0.0; n];
    v[i] = 1.0;
    v
}
