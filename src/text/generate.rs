//! Sampling text from a language model: the prompt is run through the network,
//! then each sampled token is fed back with the state carried.

use crate::cells::State;
use crate::data::embed;
use crate::fused::{self, Batch, Shape};
use anyhow::{Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How the next token is drawn from the output distribution.
#[derive(Clone, Debug)]
pub struct Sampler {
    /// Softmax temperature; 0 takes the most likely token.
    pub temperature: f64,
    /// Draw only among the `k` most likely tokens.
    pub top_k: Option<usize>,
}

impl Sampler {
    /// A token drawn from `logits` (one score per token).
    pub fn draw(&self, logits: &[f32], rng: &mut ChaCha8Rng) -> u32 {
        let mut order: Vec<usize> = (0..logits.len()).collect();
        // Most likely first; ties by id, so the draw depends on nothing else.
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if self.temperature == 0.0 {
            return order[0] as u32;
        }
        order.truncate(self.top_k.unwrap_or(order.len()).max(1));
        let top = logits[order[0]] as f64;
        let weights: Vec<f64> = order
            .iter()
            .map(|&i| ((logits[i] as f64 - top) / self.temperature).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut u = rng.random::<f64>() * total;
        for (&i, w) in order.iter().zip(&weights) {
            if u < *w {
                return i as u32;
            }
            u -= w;
        }
        order[order.len() - 1] as u32
    }
}

/// Runs `prompt` through the network (realised weights, embedding table) and
/// samples `count` tokens after it, each given to `on_token` as it is drawn. The
/// same seed gives the same tokens.
#[allow(clippy::too_many_arguments)]
pub fn sample(
    weights: &[Vec<f32>],
    embedding: &[f32],
    shape: &Shape,
    prompt: &[u32],
    count: usize,
    sampler: &Sampler,
    seed: u64,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        bail!("an empty prompt");
    }
    let width = shape.n_in;
    let rows = embedding.len() / width;
    if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= rows) {
        bail!("token id {bad} is outside the embedding ({rows} rows)");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut state: Option<Vec<State<f32>>> = None;
    let mut input = prompt.to_vec();
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let vectors = embed(embedding, width, &input);
        let batch = Batch {
            inputs: &vectors,
            labels: &[],
            len: input.len(),
            count: 1,
            first_scored: input.len(),
            start: state.as_deref(),
        };
        let (logits, end) = fused::logits(weights, &batch, shape);
        let c = shape.classes;
        let next = sampler.draw(&logits[logits.len() - c..], &mut rng);
        on_token(next)?;
        out.push(next);
        state = Some(end);
        input = vec![next];
    }
    Ok(out)
}
