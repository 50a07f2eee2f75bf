//! Fixed sets of labelled sequences, stored time-major as the networks read them:
//! generated recall tasks (dense input vectors) and tokenised text (token ids, which
//! an embedding turns into vectors).

use crate::fused::Batch;
use crate::tasks::SequenceSet;
use rayon::prelude::*;

/// The inputs of a set, time-major: element `t·N + s` (times the width) is
/// sequence `s` at step `t`.
#[derive(Clone, Debug, PartialEq)]
pub enum Inputs {
    /// Input vectors, `(L, N, width)`.
    Dense {
        /// The values.
        values: Vec<f32>,
        /// Input width.
        width: usize,
    },
    /// Token ids, `(L, N)`.
    Tokens(Vec<u32>),
}

/// A fixed set of labelled sequences.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// The inputs.
    pub inputs: Inputs,
    /// Labels of the scored steps, `(L − first_scored, N)`.
    pub labels: Vec<u32>,
    /// Steps `L`.
    pub len: usize,
    /// Sequences `N`.
    pub count: usize,
    /// First scored step.
    pub first_scored: usize,
}

impl Dataset {
    /// A generated set.
    pub fn from_set(set: &SequenceSet) -> Self {
        Dataset {
            inputs: Inputs::Dense {
                values: set.inputs.clone(),
                width: set.n_in,
            },
            labels: set.labels.clone(),
            len: set.len,
            count: set.count,
            first_scored: set.first_scored,
        }
    }

    /// Token sequences of equal length `len` (already padded), each labelled at its
    /// last step.
    pub fn from_tokens(sequences: &[Vec<u32>], labels: &[u32], len: usize) -> Self {
        let count = sequences.len();
        let mut ids = vec![0; len * count];
        for (s, seq) in sequences.iter().enumerate() {
            assert_eq!(seq.len(), len, "sequences are padded to one length");
            for (t, &id) in seq.iter().enumerate() {
                ids[t * count + s] = id;
            }
        }
        Dataset {
            inputs: Inputs::Tokens(ids),
            labels: labels.to_vec(),
            len,
            count,
            first_scored: len - 1,
        }
    }

    /// A token stream cut into `count` contiguous streams of equal length, each
    /// step labelled with the token that follows it (a language model's data). The
    /// stream's last few tokens, fewer than `count`, are left out.
    pub fn streams(ids: &[u32], count: usize) -> Self {
        let len = ids.len().saturating_sub(1) / count.max(1);
        let mut inputs = vec![0; len * count];
        let mut labels = vec![0; len * count];
        for s in 0..count {
            let stream = &ids[s * len..];
            for t in 0..len {
                inputs[t * count + s] = stream[t];
                labels[t * count + s] = stream[t + 1];
            }
        }
        Dataset {
            inputs: Inputs::Tokens(inputs),
            labels,
            len,
            count,
            first_scored: 0,
        }
    }

    /// Steps `t0..t1` of every sequence (a chunk of a language model's streams),
    /// with the labels of the scored steps among them.
    pub fn window(&self, t0: usize, t1: usize) -> Dataset {
        let n = self.count;
        let first = self.first_scored.max(t0).min(t1);
        Dataset {
            inputs: match &self.inputs {
                Inputs::Dense { values, width } => Inputs::Dense {
                    values: values[t0 * n * width..t1 * n * width].to_vec(),
                    width: *width,
                },
                Inputs::Tokens(ids) => Inputs::Tokens(ids[t0 * n..t1 * n].to_vec()),
            },
            labels: self.labels[(first - self.first_scored) * n..(t1 - self.first_scored) * n]
                .to_vec(),
            len: t1 - t0,
            count: n,
            first_scored: first - t0,
        }
    }

    /// The sequences at `indices`, in that order.
    pub fn select(&self, indices: &[u32]) -> Dataset {
        let (n, b) = (self.count, indices.len());
        fn gather<T: Copy + Send + Sync>(src: &[T], n: usize, idx: &[u32], w: usize) -> Vec<T> {
            let steps = src.len() / (n * w);
            let mut out = Vec::with_capacity(steps * idx.len() * w);
            for t in 0..steps {
                for &s in idx {
                    let at = (t * n + s as usize) * w;
                    out.extend_from_slice(&src[at..at + w]);
                }
            }
            out
        }
        Dataset {
            inputs: match &self.inputs {
                Inputs::Dense { values, width } => Inputs::Dense {
                    values: gather(values, n, indices, *width),
                    width: *width,
                },
                Inputs::Tokens(ids) => Inputs::Tokens(gather(ids, n, indices, 1)),
            },
            labels: gather(&self.labels, n, indices, 1),
            len: self.len,
            count: b,
            first_scored: self.first_scored,
        }
    }

    /// The first `count` sequences (all if fewer).
    pub fn head(&self, count: usize) -> Dataset {
        let idx: Vec<u32> = (0..count.min(self.count) as u32).collect();
        self.select(&idx)
    }

    /// The input vectors the network reads: the dense values, or each token's row of
    /// `embedding` (`V × width`, row-major).
    pub fn vectors(&self, embedding: Option<(&[f32], usize)>) -> Vec<f32> {
        match (&self.inputs, embedding) {
            (Inputs::Dense { values, .. }, _) => values.clone(),
            (Inputs::Tokens(ids), Some((table, width))) => embed(table, width, ids),
            (Inputs::Tokens(_), None) => panic!("token inputs need an embedding"),
        }
    }

    /// The set as a fused batch over the given input vectors.
    pub fn batch<'a>(&'a self, vectors: &'a [f32]) -> Batch<'a, f32> {
        Batch {
            inputs: vectors,
            labels: &self.labels,
            len: self.len,
            count: self.count,
            first_scored: self.first_scored,
            start: None,
        }
    }
}

/// Rows of an embedding table (`V × width`) for each id, concatenated.
pub fn embed(table: &[f32], width: usize, ids: &[u32]) -> Vec<f32> {
    let mut out = vec![0.0; ids.len() * width];
    out.par_chunks_mut(width * 1024)
        .zip(ids.par_chunks(1024))
        .for_each(|(dst, ids)| {
            for (row, &id) in dst.chunks_exact_mut(width).zip(ids) {
                let at = id as usize * width;
                row.copy_from_slice(&table[at..at + width]);
            }
        });
    out
}

/// `∂L/∂table` from `∂L/∂vectors` of the ids' rows: each row's gradient added into
/// its id's row (`V × width`).
pub fn embed_backward(grad_vectors: &[f32], ids: &[u32], rows: usize, width: usize) -> Vec<f32> {
    let mut grad = vec![0.0; rows * width];
    for (g, &id) in grad_vectors.chunks_exact(width).zip(ids) {
        let at = id as usize * width;
        grad[at..at + width]
            .iter_mut()
            .zip(g)
            .for_each(|(d, &s)| *d += s);
    }
    grad
}

impl Dataset {
    /// A set of no sequences.
    pub fn empty() -> Self {
        Dataset {
            inputs: Inputs::Tokens(Vec::new()),
            labels: Vec::new(),
            len: 0,
            count: 0,
            first_scored: 0,
        }
    }
}
