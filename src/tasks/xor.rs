//! Delayed XOR: a random bit stream; at every step `t ≥ d` the label is
//! `b[t-d] XOR b[t]`.

use super::{Sample, Task, bit_inputs, random_bits};
use rand_chacha::ChaCha8Rng;

/// Delayed XOR with delay `delay` over sequences of `len` bits.
pub struct Xor {
    /// Steps between the two bits combined.
    pub delay: usize,
    /// Sequence length.
    pub len: usize,
}

impl Task for Xor {
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
            .map(|t| bits[t - self.delay] ^ bits[t])
            .collect();
        Sample {
            inputs: bit_inputs(&bits),
            labels,
        }
    }
}
