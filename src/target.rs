//! Target-space networks: the trainable parameters are per-step targets for each
//! layer's pre-activation sums on a fixed realisation batch `X̄`; the weights are
//! realised from them by ridge solves before every forward pass.
//!
//! Realisation (`../shared/docs/target-space.md`), layer by layer from the bottom:
//! 1. each recurrent layer, optimistic through time: its cell run on its own targets
//!    stands in for `h_{t-1}`, and the layer's input is the actual output of the
//!    layer below (sequential between layers): `Ā_t = [1, x_t, h^stand_{t-1}]`,
//!    `W = solve(Ā, T)`;
//! 2. forward the layer's input with `W`, giving the actual states;
//! 3. the output layer, sequential: `Ā_t = [1, h_t]` from the top layer's actual
//!    states (or, fully optimistic, its stand-in states).
//!
//! Training runs through [`crate::fused`]; the candle graph here ([`TargetRnn::realise`],
//! one tanh layer) is the op-by-op oracle it is tested against.

use crate::cells::{self, CellKind};
use crate::fused::{self, Batch, Gradients, Shape};
use crate::model::{Model, RnnWeights, flat};
use crate::solve::ridge_solve;
use candle_core::{Result, Tensor, Var, bail};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Checkpoint name of recurrent layer `l`'s targets, `(rsl, rbs, G·H)`.
pub fn layer_targets_name(l: usize) -> String {
    format!("targets.layer.{l}")
}
/// Checkpoint name of the output layer's targets, `(rsl, rbs, C)`.
pub const OUTPUT_TARGETS: &str = "targets.output";
/// Checkpoint name of `X̄`, `(rsl, rbs, n_in)`.
pub const REALISATION_INPUTS: &str = "realisation.inputs";

/// Which inputs the output layer's solve sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Realisation {
    /// The actual hidden states of the realisation pass (the reference default:
    /// optimistic through time, sequential between layers).
    #[default]
    Sequential,
    /// The activations of the recurrent layer's own targets (fully optimistic).
    Optimistic,
}

/// How a target-space network is set up.
#[derive(Clone, Debug)]
pub struct TargetConfig {
    /// The network's shape.
    pub shape: Shape,
    /// Ridge regularisation `λ` of every solve.
    pub lambda: f64,
    /// Standard deviation `σ₀` of the initial targets (normal, truncated at 2σ₀).
    pub target_std: f64,
    /// Output-layer realisation variant.
    pub realisation: Realisation,
    /// Whether the output layer is trained in weight space: its parameters are its
    /// weights, not targets (for large vocabularies, whose output targets would be
    /// `rsl × rbs × V`).
    pub output_weights: bool,
}

/// What one realisation produces: the weights, and the states of the realisation
/// pass (`(rsl, rbs, H)`), which are the forward pass itself when the minibatch is
/// the realisation batch.
pub struct Realised {
    /// The realised weights.
    pub weights: RnnWeights,
    /// `h̄`, the recurrent layer's states on `X̄`.
    pub states: Tensor,
}

/// A recurrent network trained in target space.
pub struct TargetRnn {
    /// Realisation inputs `X̄`, `(rsl, rbs, n_in)`, fixed.
    inputs: Tensor,
    /// `X̄` flattened, for the fused pass.
    flat_inputs: Vec<f32>,
    /// Targets of every recurrent layer, `(rsl, rbs, ·)`, then of the output layer,
    /// or its weights `(1 + H, C)` when it is trained in weight space.
    targets: Vec<Var>,
    config: TargetConfig,
}

impl TargetRnn {
    /// A network realised on `inputs` (`(rsl, rbs, n_in)`), its targets drawn from
    /// `rng` and then projected onto what the realised network produces.
    pub fn new(
        inputs: &Tensor,
        config: TargetConfig,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Self> {
        let (rsl, rbs, _) = inputs.dims3()?;
        let mut targets = Vec::new();
        let widths = config.shape.target_widths();
        for (k, &cols) in widths.iter().enumerate() {
            if k + 1 == widths.len() && config.output_weights {
                // Weight space's initialisation: uniform in ±1/√H.
                let (rows, c) = (1 + config.shape.top(), config.shape.classes);
                let bound = 1.0 / (config.shape.top() as f32).sqrt();
                let data: Vec<f32> = (0..rows * c)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                targets.push(Var::from_tensor(&Tensor::from_vec(
                    data,
                    (rows, c),
                    inputs.device(),
                )?)?);
                break;
            }
            let data: Vec<f32> = (0..rsl * rbs * cols)
                .map(|_| truncated_normal(rng) * config.target_std as f32)
                .collect();
            targets.push(Var::from_tensor(&Tensor::from_vec(
                data,
                (rsl, rbs, cols),
                inputs.device(),
            )?)?);
        }
        let net = Self::from_targets(inputs, targets, config)?;
        net.project()?;
        Ok(net)
    }

    /// A network with the given targets (and output weights, when the output layer
    /// is trained in weight space), as they are (no projection).
    pub fn from_targets(inputs: &Tensor, targets: Vec<Var>, config: TargetConfig) -> Result<Self> {
        let (rsl, rbs, _) = inputs.dims3()?;
        if config.lambda <= 0.0 || !config.lambda.is_finite() {
            bail!("target space needs λ > 0 (got {})", config.lambda);
        }
        let widths = config.shape.target_widths();
        let mut dims: Vec<Vec<usize>> = widths.iter().map(|&w| vec![rsl, rbs, w]).collect();
        if config.output_weights {
            *dims.last_mut().expect("an output layer") =
                vec![1 + config.shape.top(), config.shape.classes];
        }
        if targets.len() != dims.len() || targets.iter().zip(&dims).any(|(t, d)| t.dims() != d) {
            let dims: Vec<_> = targets.iter().map(|t| t.dims().to_vec()).collect();
            bail!(
                "targets {dims:?} do not fit realisation inputs {:?} and widths {widths:?}",
                inputs.dims()
            );
        }
        Ok(TargetRnn {
            flat_inputs: inputs.flatten_all()?.to_vec1()?,
            inputs: inputs.clone(),
            targets,
            config,
        })
    }

    /// The targets: every recurrent layer's, then the output layer's.
    pub fn targets(&self) -> &[Var] {
        &self.targets
    }

    fn realisation(&self) -> Result<fused::Realisation<'_, f32>> {
        let (rsl, rbs, _) = self.inputs.dims3()?;
        Ok(fused::Realisation {
            inputs: &self.flat_inputs,
            rsl,
            rbs,
            lambda: self.config.lambda,
            optimistic: self.config.realisation == Realisation::Optimistic,
            output_weights: self.config.output_weights,
        })
    }

    fn flat_targets(&self) -> Result<Vec<Vec<f32>>> {
        self.targets.iter().map(flat).collect()
    }

    /// The pre-activation sums the realised network actually produces on `X̄`, shaped
    /// like the targets.
    pub fn realised_sums(&self) -> anyhow::Result<Vec<Tensor>> {
        let real = self.realisation()?;
        let realised = fused::realise(&self.flat_targets()?, &real, &self.config.shape)?;
        let sums = fused::realised_sums(&realised, &real, &self.config.shape);
        let (rsl, rbs, _) = self.inputs.dims3()?;
        Ok(sums
            .into_iter()
            .zip(self.config.shape.target_widths())
            .map(|(s, w)| Tensor::from_vec(s, (rsl, rbs, w), self.inputs.device()))
            .collect::<Result<_>>()?)
    }

    /// The initial projection: overwrite every target with the sums the realised
    /// network actually produces on `X̄`, so training starts from targets the weights
    /// can meet exactly (up to `λ`).
    pub fn project(&self) -> anyhow::Result<()> {
        let targets = self.targets.len() - usize::from(self.config.output_weights);
        for (t, s) in self.targets[..targets].iter().zip(self.realised_sums()?) {
            t.set(&s)?;
        }
        Ok(())
    }

    /// The initial projection of the output layer alone: its targets set to the sums
    /// the realised network produces on `X̄`. What a network whose recurrent layers
    /// come from another run (a language model's, under a new classifier head) starts
    /// its fresh output layer from.
    pub fn project_output(&self) -> anyhow::Result<()> {
        if self.config.output_weights {
            return Ok(());
        }
        let sums = self.realised_sums()?;
        let last = self.targets.len() - 1;
        self.targets[last].set(&sums[last])?;
        Ok(())
    }

    /// The op-by-op oracle: realises one tanh layer's weights from the targets as a
    /// candle graph (differentiable).
    pub fn realise(&self) -> Result<Realised> {
        let shape = &self.config.shape;
        if shape.layers.len() != 1 || shape.cell != CellKind::Tanh || self.config.output_weights {
            bail!("the op-by-op oracle covers one tanh layer with output targets");
        }
        let (rsl, rbs, n_in) = self.inputs.dims3()?;
        let (h, c) = (shape.layers[0], shape.classes);
        let rows = rsl * rbs;
        let t1 = self.targets[0].as_tensor();
        let activations = cells::tanh::activation(t1)?;
        let ones = Tensor::ones((rsl, rbs, 1), t1.dtype(), t1.device())?;

        // 1. Recurrent layer: the targets' own activations stand in for h_{t-1}.
        let zeros = Tensor::zeros((1, rbs, h), t1.dtype(), t1.device())?;
        let stand_in = if rsl == 1 {
            zeros
        } else {
            Tensor::cat(&[&zeros, &activations.narrow(0, 0, rsl - 1)?], 0)?
        };
        let a1 =
            Tensor::cat(&[&ones, &self.inputs, &stand_in], 2)?.reshape((rows, 1 + n_in + h))?;
        let w1 = ridge_solve(&a1, &t1.reshape((rows, h))?, self.config.lambda)?;

        // 2. The realisation pass: the actual states on X̄.
        let partial = RnnWeights {
            w1: w1.clone(),
            w2: Tensor::zeros((1 + h, c), t1.dtype(), t1.device())?,
        };
        let states = partial.states(&self.inputs)?;

        // 3. Output layer, from the actual states (or the targets' activations).
        let seen = match self.config.realisation {
            Realisation::Sequential => &states,
            Realisation::Optimistic => &activations,
        };
        let a2 = Tensor::cat(&[&ones, seen], 2)?.reshape((rows, 1 + h))?;
        let w2 = ridge_solve(
            &a2,
            &self.targets[1].as_tensor().reshape((rows, c))?,
            self.config.lambda,
        )?;
        Ok(Realised {
            weights: RnnWeights { w1, w2 },
            states,
        })
    }
}

impl Model for TargetRnn {
    fn shape(&self) -> &Shape {
        &self.config.shape
    }

    fn logits(&self, inputs: &Tensor, from: usize) -> Result<Tensor> {
        let realised = self.realise()?;
        // When the minibatch is the realisation batch itself, the realisation pass
        // already is the forward pass.
        let states = if inputs.id() == self.inputs.id() {
            realised.states
        } else {
            realised.weights.states(inputs)?
        };
        let l = states.dim(0)?;
        realised.weights.output(&states.narrow(0, from, l - from)?)
    }

    fn is_realisation_batch(&self, inputs: &Tensor) -> bool {
        // The same tensor as X̄ (not merely equal values).
        inputs.id() == self.inputs.id()
    }

    fn batch_gradients(
        &self,
        batch: &Batch<'_, f32>,
        shared: bool,
    ) -> anyhow::Result<Gradients<f32>> {
        let batch = Batch {
            inputs: if shared {
                &self.flat_inputs
            } else {
                batch.inputs
            },
            ..*batch
        };
        fused::target_space(
            &self.flat_targets()?,
            &self.realisation()?,
            &batch,
            shared,
            &self.config.shape,
        )
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        let depth = self.config.shape.layers.len();
        self.targets
            .iter()
            .enumerate()
            .map(|(l, t)| {
                (
                    if l < depth {
                        layer_targets_name(l)
                    } else if self.config.output_weights {
                        crate::model::OUTPUT_WEIGHTS.into()
                    } else {
                        OUTPUT_TARGETS.into()
                    },
                    t.clone(),
                )
            })
            .collect()
    }

    fn weights(&self) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(fused::realise(
            &self.flat_targets()?,
            &self.realisation()?,
            &self.config.shape,
        )?
        .weights)
    }

    fn fixed_tensors(&self) -> Vec<(String, Tensor)> {
        vec![(REALISATION_INPUTS.into(), self.inputs.clone())]
    }
}

/// A standard normal draw, redrawn until it lies within two standard deviations.
fn truncated_normal(rng: &mut ChaCha8Rng) -> f32 {
    loop {
        let z: f32 = StandardNormal.sample(rng);
        if z.abs() <= 2.0 {
            return z;
        }
    }
}
