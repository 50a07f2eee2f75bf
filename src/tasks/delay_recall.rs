//! Delay recall (the paper's memorisation task): a random bit stream, and at every
//! step `t ≥ d` the label is the bit seen `d` steps earlier.

use super::{Sample, Task, bit_inputs, random_bits};
use rand_chacha::ChaCha8Rng;

/// Delay recall with delay `delay` over sequences of `len` bits.
pub struct DelayRecall {
    /// Steps between a bit and its recall.
    pub delay: usize,
    /// Sequence length.
    pub len: usize,
}

impl Task for DelayRecall {
    fn seq_len(&self) -> usize {
        self.len
    }
    fn n_in(&self) -> usize {
        1
    }
    fn classes(&self) -> usize {
        2
    }
    fn first_scored(&self) -> usize {
        self.delay
    }
    fn sample(&self, rng: &mut ChaCha8Rng) -> Sample {
        let bits = random_bits(rng, self.len);
        let labels = (self.delay..self.len)
            .map(|t| bits[t - self.delay])
            .collect();
        Sample {
            inputs: bit_inputs(&bits),
            labels,
        }
    }
}
