//! The temporal order task (Hochreiter & Schmidhuber, "Long Short-Term Memory",
//! 1997, experiment 6a), at a fixed length `L`.
//!
//! Symbols (one-hot, 8): distractors a, b, c, d; markers X, Y; start B; end E. A
//! sequence is B, then distractors drawn uniformly, then E. Two steps hold a
//! marker (X or Y, uniformly) instead of a distractor: `t1` uniform in
//! `[L/10, 2L/10]` and `t2` uniform in `[5L/10, 6L/10]` (for `L = 100` the
//! original's 10–20 and 50–60). The class of the order (XX, XY, YX, YY) is read at
//! the last step.

use super::{Sample, Task, one_hot};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

const SYMBOLS: usize = 8;
const X: usize = 4;
const START: usize = 6;
const END: usize = 7;

/// Temporal order over sequences of `len` steps.
pub struct TemporalOrder {
    /// Sequence length.
    pub len: usize,
}

impl TemporalOrder {
    /// The shortest length at which the two marker windows are apart and inside.
    pub const MIN_LEN: usize = 20;
}

impl Task for TemporalOrder {
    fn seq_len(&self) -> usize {
        self.len
    }
    fn n_in(&self) -> usize {
        SYMBOLS
    }
    fn classes(&self) -> usize {
        4
    }
    fn first_scored(&self) -> usize {
        self.len - 1
    }
    fn sample(&self, rng: &mut ChaCha8Rng) -> Sample {
        let l = self.len;
        let mut symbols: Vec<usize> = (0..l).map(|_| rng.random_range(0..4)).collect();
        symbols[0] = START;
        symbols[l - 1] = END;
        let t1 = rng.random_range(l / 10..=2 * l / 10);
        let t2 = rng.random_range(5 * l / 10..=6 * l / 10);
        let m1 = rng.random_range(0..2);
        let m2 = rng.random_range(0..2);
        symbols[t1] = X + m1;
        symbols[t2] = X + m2;
        Sample {
            inputs: symbols.iter().map(|&s| one_hot(s, SYMBOLS)).collect(),
            labels: vec![(2 * m1 + m2) as u32],
        }
    }
}
