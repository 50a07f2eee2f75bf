//! What both spaces share: the network's weights and forward pass, and the
//! interface the trainer drives.
//!
//! The network, one step `t` (bias input first, `h₋₁ = 0`):
//! `h_t = tanh([1, x_t, h_{t-1}] · W¹)`, logits `y_t = [1, h_t] · W²`.

use crate::cells;
use crate::fused::{Batch, Gradients, Shape};
use candle_core::{Result, Tensor, Var};

/// The weights of a one-layer tanh network as candle tensors, for the op-by-op
/// oracle; rows ordered as the layer inputs:
/// `w1` is `(1 + n_in + H) × H` (bias, inputs, recurrence), `w2` is `(1 + H) × C`.
#[derive(Clone, Debug)]
pub struct RnnWeights {
    /// Recurrent layer weights.
    pub w1: Tensor,
    /// Output layer weights.
    pub w2: Tensor,
}

impl RnnWeights {
    /// Hidden units.
    pub fn hidden(&self) -> Result<usize> {
        self.w1.dim(1)
    }

    /// The recurrent layer's states `(L, B, H)` for time-major inputs `(L, B, n_in)`.
    pub fn states(&self, inputs: &Tensor) -> Result<Tensor> {
        let (l, b, n_in) = inputs.dims3()?;
        let h = self.hidden()?;
        let sums = self.input_sums(inputs)?;
        let w_h = self.w1.narrow(0, 1 + n_in, h)?;
        let h0 = Tensor::zeros((b, h), inputs.dtype(), inputs.device())?;
        let states = cells::tanh::unroll(&sums, &w_h, &h0)?;
        debug_assert_eq!(states.dims3()?, (l, b, h));
        Ok(states)
    }

    /// `b + x_t W_x` for every step at once: the part of the recurrent layer's sums
    /// that does not depend on the recurrence. `(L, B, H)`.
    pub fn input_sums(&self, inputs: &Tensor) -> Result<Tensor> {
        let (l, b, n_in) = inputs.dims3()?;
        let h = self.hidden()?;
        let bias = self.w1.get(0)?;
        let w_x = self.w1.narrow(0, 1, n_in)?;
        inputs
            .reshape((l * b, n_in))?
            .matmul(&w_x)?
            .broadcast_add(&bias)?
            .reshape((l, b, h))
    }

    /// Logits `(L, B, C)` from states `(L, B, H)`.
    pub fn output(&self, states: &Tensor) -> Result<Tensor> {
        let (l, b, h) = states.dims3()?;
        let c = self.w2.dim(1)?;
        states
            .reshape((l * b, h))?
            .matmul(&self.w2.narrow(0, 1, h)?)?
            .broadcast_add(&self.w2.get(0)?)?
            .reshape((l, b, c))
    }

    /// Logits of steps `from..L` for inputs `(L, B, n_in)`: `(L - from, B, C)`.
    pub fn logits(&self, inputs: &Tensor, from: usize) -> Result<Tensor> {
        let states = self.states(inputs)?;
        let l = states.dim(0)?;
        self.output(&states.narrow(0, from, l - from)?)
    }
}

/// Checkpoint name of recurrent layer `l`'s weights.
pub fn layer_weights_name(l: usize) -> String {
    format!("weights.layer.{l}")
}

/// Checkpoint name of the output layer's weights.
pub const OUTPUT_WEIGHTS: &str = "weights.output";

/// Checkpoint names of every weight matrix of a shape: layers, then output.
pub fn weight_names(shape: &Shape) -> Vec<String> {
    let mut names: Vec<String> = (0..shape.layers.len()).map(layer_weights_name).collect();
    names.push(OUTPUT_WEIGHTS.into());
    names
}

/// A trainable recurrent network, in either space.
pub trait Model {
    /// Its shape.
    fn shape(&self) -> &Shape;
    /// Logits of steps `from..L` for inputs `(L, B, n_in)`, as a candle graph
    /// differentiable with respect to [`Model::parameters`]: the op-by-op oracle of
    /// [`Model::loss_and_gradients`], for one tanh layer.
    fn logits(&self, inputs: &Tensor, from: usize) -> Result<Tensor>;
    /// Loss and parameter gradients on a batch (inputs `(L, B, n_in)`, labels
    /// `(L - from, B)`), computed by the fused analytic pass.
    fn loss_and_gradients(
        &self,
        inputs: &Tensor,
        labels: &Tensor,
        from: usize,
    ) -> anyhow::Result<Gradients<f32>> {
        let (len, count, _) = inputs.dims3()?;
        let (x, y) = flat_batch(inputs, labels)?;
        let batch = Batch {
            inputs: &x,
            labels: &y,
            len,
            count,
            first_scored: from,
            start: None,
        };
        self.batch_gradients(&batch, self.is_realisation_batch(inputs))
    }
    /// Whether `inputs` is the realisation batch itself, whose realisation passes
    /// are then the forward passes (target space).
    fn is_realisation_batch(&self, _inputs: &Tensor) -> bool {
        false
    }
    /// Loss and parameter gradients on a flat batch. `shared` says the batch is the
    /// realisation batch itself (target space; its inputs are then `X̄`'s).
    fn batch_gradients(
        &self,
        batch: &Batch<'_, f32>,
        shared: bool,
    ) -> anyhow::Result<Gradients<f32>>;
    /// The trainable parameters with their checkpoint names, in a fixed order.
    fn named_parameters(&self) -> Vec<(String, Var)>;
    /// The trainable parameters, in the order of [`Model::named_parameters`].
    fn parameters(&self) -> Vec<Var> {
        self.named_parameters()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }
    /// The weights the network computes with (realised, in target space), flat:
    /// every recurrent layer, then the output layer.
    fn weights(&self) -> anyhow::Result<Vec<Vec<f32>>>;
    /// Fixed tensors the network was built on (the realisation inputs), by name.
    fn fixed_tensors(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
    /// Every tensor a checkpoint keeps, by name: the parameters, the fixed tensors,
    /// and the weights the network computes with (so inference needs no solve).
    fn tensors(&self) -> anyhow::Result<Vec<(String, Tensor)>> {
        let mut all: Vec<(String, Tensor)> = self
            .named_parameters()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let names = weight_names(self.shape());
        all.retain(|(n, _)| !names.contains(n));
        all.extend(self.fixed_tensors());
        for ((name, w), dims) in names
            .into_iter()
            .zip(self.weights()?)
            .zip(self.shape().weight_shapes())
        {
            all.push((name, Tensor::from_vec(w, dims, &candle_core::Device::Cpu)?));
        }
        Ok(all)
    }
}

/// A batch's tensors as the flat buffers the fused pass reads.
pub(crate) fn flat_batch(inputs: &Tensor, labels: &Tensor) -> Result<(Vec<f32>, Vec<u32>)> {
    Ok((
        inputs.flatten_all()?.to_vec1()?,
        labels.flatten_all()?.to_vec1()?,
    ))
}

/// The flat values of a parameter.
pub(crate) fn flat(var: &Var) -> Result<Vec<f32>> {
    var.flatten_all()?.to_vec1()
}
