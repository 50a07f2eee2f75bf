//! The weight-space twin: the same network, its weights trained directly by
//! backpropagation through time.

use crate::fused::{self, Batch, Dims, Gradients};
use crate::model::{Model, RnnWeights, WEIGHTS_OUTPUT, WEIGHTS_RECURRENT, flat, flat_batch};
use candle_core::{Device, Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A tanh recurrent network whose parameters are its weights.
pub struct WeightRnn {
    w1: Var,
    w2: Var,
}

impl WeightRnn {
    /// A network with `n_in` inputs, `hidden` units and `classes` outputs. Weights are
    /// uniform in `±1/√H` (PyTorch's initialisation of `nn.RNN`), drawn from `rng`.
    pub fn new(
        n_in: usize,
        hidden: usize,
        classes: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<Self> {
        let bound = 1.0 / (hidden as f32).sqrt();
        let mut uniform = |rows: usize, cols: usize| -> Result<Var> {
            let data: Vec<f32> = (0..rows * cols)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            Var::from_tensor(&Tensor::from_vec(data, (rows, cols), device)?)
        };
        let w1 = uniform(1 + n_in + hidden, hidden)?;
        let w2 = uniform(1 + hidden, classes)?;
        Ok(WeightRnn { w1, w2 })
    }

    /// A network with the given weights.
    pub fn from_weights(weights: &RnnWeights) -> Result<Self> {
        Ok(WeightRnn {
            w1: Var::from_tensor(&weights.w1)?,
            w2: Var::from_tensor(&weights.w2)?,
        })
    }
}

impl Model for WeightRnn {
    fn logits(&self, inputs: &Tensor, from: usize) -> Result<Tensor> {
        self.weights()?.logits(inputs, from)
    }

    fn loss_and_gradients(
        &self,
        inputs: &Tensor,
        labels: &Tensor,
        from: usize,
    ) -> anyhow::Result<Gradients> {
        let (len, count, n_in) = inputs.dims3()?;
        let (x, y) = flat_batch(inputs, labels)?;
        let batch = Batch {
            inputs: &x,
            labels: &y,
            len,
            count,
            first_scored: from,
        };
        let dims = Dims {
            n_in,
            hidden: self.w1.dim(1)?,
            classes: self.w2.dim(1)?,
        };
        fused::weight_space(&flat(&self.w1)?, &flat(&self.w2)?, &batch, dims)
    }

    fn named_parameters(&self) -> Vec<(&'static str, Var)> {
        vec![
            (WEIGHTS_RECURRENT, self.w1.clone()),
            (WEIGHTS_OUTPUT, self.w2.clone()),
        ]
    }

    fn weights(&self) -> Result<RnnWeights> {
        Ok(RnnWeights {
            w1: self.w1.as_tensor().clone(),
            w2: self.w2.as_tensor().clone(),
        })
    }
}
