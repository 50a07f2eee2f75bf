//! The weight-space twin: the same networks, their weights trained directly by
//! backpropagation through time.

use crate::cells::CellKind;
use crate::fused::{self, Batch, Gradients, Shape};
use crate::model::{Model, RnnWeights, flat, weight_names};
use candle_core::{Device, Result, Tensor, Var, bail};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A recurrent network whose parameters are its weights.
pub struct WeightRnn {
    shape: Shape,
    weights: Vec<Var>,
}

impl WeightRnn {
    /// A network of this shape. Weights are uniform in `±1/√H` of the layer
    /// (PyTorch's initialisation of its recurrent layers), drawn from `rng`.
    pub fn new(shape: &Shape, rng: &mut ChaCha8Rng, device: &Device) -> Result<Self> {
        let mut weights = Vec::new();
        for (l, (rows, cols)) in shape.weight_shapes().into_iter().enumerate() {
            let units = if l < shape.layers.len() {
                shape.layers[l]
            } else {
                shape.top()
            };
            let bound = 1.0 / (units as f32).sqrt();
            let data: Vec<f32> = (0..rows * cols)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            weights.push(Var::from_tensor(&Tensor::from_vec(
                data,
                (rows, cols),
                device,
            )?)?);
        }
        Ok(WeightRnn {
            shape: shape.clone(),
            weights,
        })
    }
}

impl Model for WeightRnn {
    fn shape(&self) -> &Shape {
        &self.shape
    }

    fn logits(&self, inputs: &Tensor, from: usize) -> Result<Tensor> {
        if self.shape.layers.len() != 1 || self.shape.cell != CellKind::Tanh {
            bail!("the op-by-op oracle covers one tanh layer");
        }
        let weights = RnnWeights {
            w1: self.weights[0].as_tensor().clone(),
            w2: self.weights[1].as_tensor().clone(),
        };
        weights.logits(inputs, from)
    }

    fn batch_gradients(
        &self,
        batch: &Batch<'_, f32>,
        _shared: bool,
    ) -> anyhow::Result<Gradients<f32>> {
        fused::weight_space(&self.weights()?, batch, &self.shape)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        weight_names(&self.shape)
            .into_iter()
            .zip(self.weights.iter().cloned())
            .collect()
    }

    fn weights(&self) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(self.weights.iter().map(flat).collect::<Result<_>>()?)
    }
}
