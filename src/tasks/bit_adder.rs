//! Serial bit adder: the streams `a_t = b[t-d]` and `c_t = b[t]` (for `t ≥ d`) are two
//! binary numbers written lowest bit first; the label at step `t` is the sum bit of
//! adding them serially, the carry kept from step to step (zero at `t = d`).

use super::{Sample, Task, bit_inputs, random_bits};
use rand_chacha::ChaCha8Rng;

/// The serial bit adder with delay `delay` over sequences of `len` bits.
pub struct BitAdder {
    /// Steps between the two addend bits.
    pub delay: usize,
    /// Sequence length.
    pub len: usize,
}

impl Task for BitAdder {
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
        let mut carry = 0;
        let labels = (self.delay..self.len)
            .map(|t| {
                let sum = bits[t - self.delay] + bits[t] + carry;
                carry = sum / 2;
                sum % 2
            })
            .collect();
        Sample {
            inputs: bit_inputs(&bits),
            labels,
        }
    }
}
