//! The copy task (Arjovsky, Shah & Bengio, "Unitary Evolution Recurrent Neural
//! Networks", 2016, after Hochreiter & Schmidhuber 1997).
//!
//! Symbols: 0 is blank, 1–8 are data, 9 is the delimiter; inputs are one-hot (10).
//! A sequence of length `delay + 20` is 10 data symbols drawn uniformly, then
//! `delay - 1` blanks, the delimiter, and 10 blanks. The network must output blanks
//! and then, on the last 10 steps, the 10 data symbols in order. Arjovsky et al.
//! score every step; here only the 10 recall steps are scored (loss and accuracy),
//! so the accuracy reads directly as the fraction of symbols recalled (chance 1/8).

use super::{Sample, Task, one_hot};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

const SYMBOLS: usize = 10;
const DATA: u32 = 8;
const DELIMITER: usize = 9;
const COPY_LEN: usize = 10;

/// The copy task with `delay` blank steps between the data and the delimiter's echo.
pub struct Copy {
    /// Blank steps after the data (the delimiter is the last of them).
    pub delay: usize,
}

impl Copy {
    /// Sequence length for a delay: the data, the wait, and the recall.
    pub fn seq_len_for(delay: usize) -> usize {
        delay + 2 * COPY_LEN
    }
}

impl Task for Copy {
    fn seq_len(&self) -> usize {
        Copy::seq_len_for(self.delay)
    }
    fn n_in(&self) -> usize {
        SYMBOLS
    }
    fn classes(&self) -> usize {
        SYMBOLS
    }
    fn first_scored(&self) -> usize {
        self.seq_len() - COPY_LEN
    }
    fn sample(&self, rng: &mut ChaCha8Rng) -> Sample {
        let data: Vec<u32> = (0..COPY_LEN).map(|_| rng.random_range(1..=DATA)).collect();
        let mut symbols = vec![0usize; self.seq_len()];
        for (i, &s) in data.iter().enumerate() {
            symbols[i] = s as usize;
        }
        symbols[COPY_LEN + self.delay - 1] = DELIMITER;
        Sample {
            inputs: symbols.iter().map(|&s| one_hot(s, SYMBOLS)).collect(),
            labels: data,
        }
    }
}
