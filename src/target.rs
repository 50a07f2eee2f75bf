//! Target-space networks: the trainable parameters are per-step targets for each
//! layer's pre-activation sums on a fixed realisation batch `X̄`; the weights are
//! realised from them by ridge solves before every forward pass.
//!
//! Realisation (`../shared/docs/target-space.md`):
//! 1. recurrent layer, optimistic through time: `Ā¹_t = [1, x̄_t, tanh(T¹_{t-1})]`,
//!    `W¹ = solve(Ā¹, T¹)`;
//! 2. forward `X̄` with `W¹`, giving the actual states `h̄_t`;
//! 3. output layer, sequential: `Ā²_t = [1, h̄_t]`, `W² = solve(Ā², T²)` (or, fully
//!    optimistic, `Ā²_t = [1, tanh(T¹_t)]`).

use crate::cells;
use crate::fused::{self, Batch, Dims, Gradients};
use crate::model::{Model, RnnWeights, WEIGHTS_OUTPUT, WEIGHTS_RECURRENT, flat, flat_batch};
use crate::solve::ridge_solve;
use candle_core::{Result, Tensor, Var, bail};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Checkpoint name of `T¹`, `(rsl, rbs, H)`.
pub const TARGETS_RECURRENT: &str = "targets.recurrent";
/// Checkpoint name of `T²`, `(rsl, rbs, C)`.
pub const TARGETS_OUTPUT: &str = "targets.output";
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
    /// Hidden units `H`.
    pub hidden: usize,
    /// Output classes `C`.
    pub classes: usize,
    /// Ridge regularisation `λ` of every solve.
    pub lambda: f64,
    /// Standard deviation `σ₀` of the initial targets (normal, truncated at 2σ₀).
    pub target_std: f64,
    /// Output-layer realisation variant.
    pub realisation: Realisation,
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

/// A tanh recurrent network trained in target space.
pub struct TargetRnn {
    /// Realisation inputs `X̄`, `(rsl, rbs, n_in)`, fixed.
    inputs: Tensor,
    /// `[1, x̄_t]` for every row, `(rsl, rbs, 1 + n_in)`: the fixed part of `Ā¹`.
    fixed_columns: Tensor,
    /// `X̄` flattened, for the fused pass.
    flat_inputs: Vec<f32>,
    /// Recurrent-layer targets `T¹`, `(rsl, rbs, H)`.
    t1: Var,
    /// Output-layer targets `T²`, `(rsl, rbs, C)`.
    t2: Var,
    config: TargetConfig,
}

impl TargetRnn {
    /// A network realised on `inputs` (`(rsl, rbs, n_in)`), its targets drawn from
    /// `rng` and then projected onto what the realised network produces.
    pub fn new(inputs: &Tensor, config: TargetConfig, rng: &mut ChaCha8Rng) -> Result<Self> {
        let (rsl, rbs, _) = inputs.dims3()?;
        if config.lambda <= 0.0 || !config.lambda.is_finite() {
            bail!("target space needs λ > 0 (got {})", config.lambda);
        }
        let mut draw = |cols: usize| -> Result<Var> {
            let data: Vec<f32> = (0..rsl * rbs * cols)
                .map(|_| truncated_normal(rng) * config.target_std as f32)
                .collect();
            Var::from_tensor(&Tensor::from_vec(data, (rsl, rbs, cols), inputs.device())?)
        };
        let t1 = draw(config.hidden)?;
        let t2 = draw(config.classes)?;
        let net = Self::from_targets(inputs, t1, t2, config)?;
        net.project()?;
        Ok(net)
    }

    /// A network with the given targets, as they are (no projection).
    pub fn from_targets(inputs: &Tensor, t1: Var, t2: Var, config: TargetConfig) -> Result<Self> {
        let (rsl, rbs, _) = inputs.dims3()?;
        if t1.dims() != [rsl, rbs, config.hidden] || t2.dims() != [rsl, rbs, config.classes] {
            bail!(
                "targets {:?} and {:?} do not fit realisation inputs {:?}",
                t1.dims(),
                t2.dims(),
                inputs.dims()
            );
        }
        let ones = Tensor::ones((rsl, rbs, 1), inputs.dtype(), inputs.device())?;
        let fixed_columns = Tensor::cat(&[&ones, inputs], 2)?;
        Ok(TargetRnn {
            flat_inputs: inputs.flatten_all()?.to_vec1()?,
            inputs: inputs.clone(),
            fixed_columns,
            t1,
            t2,
            config,
        })
    }

    /// The realisation inputs `X̄`.
    pub fn realisation_inputs(&self) -> &Tensor {
        &self.inputs
    }

    /// The targets `(T¹, T²)`.
    pub fn targets(&self) -> (&Var, &Var) {
        (&self.t1, &self.t2)
    }

    /// Realises the weights from the current targets (differentiable).
    pub fn realise(&self) -> Result<Realised> {
        let (rsl, rbs, n_in) = self.inputs.dims3()?;
        let (h, c) = (self.config.hidden, self.config.classes);
        let rows = rsl * rbs;
        let t1 = self.t1.as_tensor();
        let activations = cells::tanh::activation(t1)?;

        // 1. Recurrent layer: the targets' own activations stand in for h_{t-1}.
        let zeros = Tensor::zeros((1, rbs, h), t1.dtype(), t1.device())?;
        let stand_in = if rsl == 1 {
            zeros
        } else {
            Tensor::cat(&[&zeros, &activations.narrow(0, 0, rsl - 1)?], 0)?
        };
        let a1 =
            Tensor::cat(&[&self.fixed_columns, &stand_in], 2)?.reshape((rows, 1 + n_in + h))?;
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
        let ones = self.fixed_columns.narrow(2, 0, 1)?;
        let a2 = Tensor::cat(&[&ones, seen], 2)?.reshape((rows, 1 + h))?;
        let w2 = ridge_solve(
            &a2,
            &self.t2.as_tensor().reshape((rows, c))?,
            self.config.lambda,
        )?;
        Ok(Realised {
            weights: RnnWeights { w1, w2 },
            states,
        })
    }

    /// The initial projection: overwrite every target with the sums the realised
    /// network actually produces on `X̄`, so training starts from targets the weights
    /// can meet exactly (up to `λ`).
    pub fn project(&self) -> Result<()> {
        let (s1, s2) = self.realised_sums()?;
        self.t1.set(&s1)?;
        self.t2.set(&s2)
    }

    /// The pre-activation sums `(s̄¹, s̄²)` that the realised network produces on `X̄`,
    /// each shaped like its targets. Not differentiable.
    pub fn realised_sums(&self) -> Result<(Tensor, Tensor)> {
        let realised = self.realise()?;
        let weights = realised.weights.detach();
        let states = realised.states.detach();
        let (rsl, rbs, n_in) = self.inputs.dims3()?;
        let h = self.config.hidden;
        let w_h = weights.w1.narrow(0, 1 + n_in, h)?;
        let zeros = Tensor::zeros((1, rbs, h), states.dtype(), states.device())?;
        let prev = if rsl == 1 {
            zeros
        } else {
            Tensor::cat(&[&zeros, &states.narrow(0, 0, rsl - 1)?], 0)?
        };
        let recurrent = prev
            .reshape((rsl * rbs, h))?
            .matmul(&w_h)?
            .reshape((rsl, rbs, h))?;
        let s1 = (weights.input_sums(&self.inputs)? + recurrent)?;
        let s2 = weights.output(&states)?;
        Ok((s1, s2))
    }
}

impl Model for TargetRnn {
    fn logits(&self, inputs: &Tensor, from: usize) -> Result<Tensor> {
        let realised = self.realise()?;
        // When the minibatch is the realisation batch itself, the realisation pass
        // already is the forward pass: use its states rather than run it twice.
        let states = if inputs.id() == self.inputs.id() {
            realised.states
        } else {
            realised.weights.states(inputs)?
        };
        let l = states.dim(0)?;
        realised.weights.output(&states.narrow(0, from, l - from)?)
    }

    fn loss_and_gradients(
        &self,
        inputs: &Tensor,
        labels: &Tensor,
        from: usize,
    ) -> anyhow::Result<Gradients> {
        let (len, count, n_in) = inputs.dims3()?;
        let (rsl, rbs, _) = self.inputs.dims3()?;
        let shared = inputs.id() == self.inputs.id();
        let (x, y) = if shared {
            (Vec::new(), labels.flatten_all()?.to_vec1()?)
        } else {
            flat_batch(inputs, labels)?
        };
        let batch = Batch {
            inputs: if shared { &self.flat_inputs } else { &x },
            labels: &y,
            len,
            count,
            first_scored: from,
        };
        let realisation = fused::Realisation {
            inputs: &self.flat_inputs,
            rsl,
            rbs,
            lambda: self.config.lambda,
            optimistic: self.config.realisation == Realisation::Optimistic,
            shared,
        };
        let dims = Dims {
            n_in,
            hidden: self.config.hidden,
            classes: self.config.classes,
        };
        fused::target_space(
            &flat(&self.t1)?,
            &flat(&self.t2)?,
            &realisation,
            &batch,
            dims,
        )
    }

    fn named_parameters(&self) -> Vec<(&'static str, Var)> {
        vec![
            (TARGETS_RECURRENT, self.t1.clone()),
            (TARGETS_OUTPUT, self.t2.clone()),
        ]
    }

    fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let weights = self.weights()?;
        Ok(vec![
            (TARGETS_RECURRENT.into(), self.t1.as_tensor().clone()),
            (TARGETS_OUTPUT.into(), self.t2.as_tensor().clone()),
            (REALISATION_INPUTS.into(), self.inputs.clone()),
            (WEIGHTS_RECURRENT.into(), weights.w1),
            (WEIGHTS_OUTPUT.into(), weights.w2),
        ])
    }

    fn weights(&self) -> Result<RnnWeights> {
        Ok(self.realise()?.weights.detach())
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
