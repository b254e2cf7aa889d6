//! The seed's MLP GAN as step graphs: a discriminator step (fakes detached), a generator step
//! (gradients flow through D, only G is updated), and generation with BatchNorm in eval mode.
//! Unconditional, or conditional with a one-hot class joined to the noise and, for D, joined
//! to its input, predicted by an auxiliary classifier head (AC-GAN), or projected onto its last
//! hidden features (the projection discriminator: the `lm3s6965` and `pico` presets' choice).
//!
//! State tensor names (PyTorch-like): generator `g.block{i}.linear.{weight,bias}`,
//! `g.block{i}.bn.{weight,bias,running_mean,running_var}`, `g.out.{weight,bias}`;
//! discriminator `d.block{i}.linear.{weight,bias}`, `d.out.{weight,bias}` (and the projection's
//! class embedding `d.embed.weight`); Adam moments
//! `<param>.adam_m`, `<param>.adam_v`; step counters `g.adam_step`, `d.adam_step`; the
//! generator's moving averages `<tensor>.ema`.
//! Linear weights are `[out, in]`.

mod graphs;
mod onnx;
mod trainer;

pub use graphs::{
    LossGraph, d_loss_graph, d_step_graph, g_loss_graph, g_step_graph, generate_graph,
};
pub use onnx::generator_onnx;
pub use trainer::{GanTrainer, StepLosses};

use crate::model::{NamedTensor, ParamSpec, batch_norm_specs, linear_specs, optimizer_state_specs};
use crate::optim::Adam;
use crate::runtime::{RResult, RuntimeError};
use checkpoint::run::{OUTPUT_LINEAR, block_batch_norm, block_linear, ema_name};
use checkpoint::{Conditioning, IMAGE_DIM, RunConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a training run needs in memory, in bytes, by kind (see [`GanConfig::memory_estimate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Parameters, Adam's moments and the weight average, with their copies.
    pub state: u64,
    pub gradients: u64,
    /// One step's activations and their gradients.
    pub activations: u64,
}

impl MemoryEstimate {
    /// Beside the tensors: the runtime, the data set (60,000 images as bytes) and the process;
    /// from a run's peak resident memory less its tensors' share, with a margin.
    pub const BASELINE: u64 = 160 << 20;

    pub fn total(&self) -> u64 {
        Self::BASELINE
            .saturating_add(self.state)
            .saturating_add(self.gradients)
            .saturating_add(self.activations)
    }
}

/// A GAN's shape and recipe.
#[derive(Clone, Debug, PartialEq)]
pub struct GanConfig {
    pub z_dim: usize,
    /// `Some(k)`: conditional on one of `k` classes.
    pub classes: Option<usize>,
    /// Hidden widths of the generator (each Linear, BatchNorm, ReLU).
    pub g_widths: Vec<usize>,
    /// Hidden widths of the discriminator (each Linear, LeakyReLU).
    pub d_widths: Vec<usize>,
    pub image_dim: usize,
    pub batch: usize,
    pub g_adam: Adam,
    pub d_adam: Adam,
    pub leaky_slope: f32,
    /// Seeds parameter initialisation and the trainer's noise.
    pub seed: u64,
    /// How D uses the class (ignored when unconditional).
    pub conditioning: Conditioning,
    /// Weight of the auxiliary classification loss in both models' losses.
    pub aux_weight: f64,
    /// D's target for real images: 1, or less for one-sided label smoothing.
    pub real_target: f64,
    /// Decay β of the moving average of G's tensors (0: none). Each G step sets
    /// `avg ← d·avg + (1 − d)·new` with `d = min(β, (1 + t)/(10 + t))` at step `t`, so that the
    /// average forgets its random start within the first steps of a short run.
    pub ema: f64,
}

impl GanConfig {
    /// The training engine's view of a run's configuration.
    pub fn from_run(cfg: &RunConfig) -> Self {
        GanConfig {
            z_dim: cfg.z_dim,
            classes: cfg.conditional.then_some(checkpoint::CLASSES),
            g_widths: cfg.g_widths.clone(),
            d_widths: cfg.d_widths.clone(),
            image_dim: IMAGE_DIM,
            batch: cfg.batch,
            g_adam: Adam::new(cfg.lr_g, cfg.beta1, cfg.beta2),
            d_adam: Adam::new(cfg.lr_d, cfg.beta1, cfg.beta2),
            leaky_slope: 0.2,
            seed: cfg.seed,
            conditioning: cfg.conditioning,
            aux_weight: cfg.aux_weight,
            real_target: cfg.real_target,
            ema: cfg.ema,
        }
    }

    /// The seed recipe: the `seed` preset's GAN (z 64, G 128–1024, D 512–128, batch 128,
    /// Adam 1e-5).
    pub fn seed_recipe() -> Self {
        Self::from_run(&RunConfig::preset(checkpoint::Preset::Seed))
    }

    /// Rejects shapes the graphs cannot be built for.
    pub fn validate(&self) -> RResult<()> {
        let bad = |m: &str| {
            Err(RuntimeError::Usage(format!(
                "invalid GAN configuration: {m}"
            )))
        };
        if self.z_dim == 0 || self.image_dim == 0 {
            return bad("z_dim and image_dim must be positive");
        }
        if self.batch < 2 {
            return bad("the batch must hold at least 2 samples (BatchNorm needs a variance)");
        }
        if self.g_widths.contains(&0) || self.d_widths.contains(&0) {
            return bad("layer widths must be positive");
        }
        if self.classes == Some(0) {
            return bad("a conditional GAN needs at least one class");
        }
        if !(self.real_target > 0.0 && self.real_target <= 1.0) {
            return bad("the real target must be in (0, 1]");
        }
        if !(0.0..1.0).contains(&self.ema) {
            return bad("the moving average's decay must be in [0, 1)");
        }
        if !(self.aux_weight.is_finite() && self.aux_weight >= 0.0) {
            return bad("the auxiliary loss weight must be finite and not negative");
        }
        Ok(())
    }

    fn class_dim(&self) -> usize {
        self.classes.unwrap_or(0)
    }

    /// Classes predicted by D's auxiliary head (0 when it has none).
    fn aux_classes(&self) -> usize {
        match (self.classes, self.conditioning) {
            (Some(k), Conditioning::Auxiliary) => k,
            _ => 0,
        }
    }

    /// Width of the class one-hot joined to D's input.
    fn d_class_dim(&self) -> usize {
        match self.conditioning {
            Conditioning::Concat => self.class_dim(),
            Conditioning::Auxiliary | Conditioning::Projection => 0,
        }
    }

    /// Classes D embeds for its projection term (0 when it has none).
    fn projected_classes(&self) -> usize {
        match (self.classes, self.conditioning) {
            (Some(k), Conditioning::Projection) => k,
            _ => 0,
        }
    }

    /// Generator tensors: trainable parameters and BatchNorm running statistics.
    pub fn generator_specs(&self) -> Vec<ParamSpec> {
        let mut v = Vec::new();
        let mut inp = self.z_dim + self.class_dim();
        for (i, &w) in self.g_widths.iter().enumerate() {
            v.extend(linear_specs(&block_linear(i), inp, w));
            v.extend(batch_norm_specs(&block_batch_norm(i), w));
            inp = w;
        }
        v.extend(linear_specs(OUTPUT_LINEAR, inp, self.image_dim));
        v
    }

    /// Discriminator parameters.
    pub fn discriminator_specs(&self) -> Vec<ParamSpec> {
        let mut v = Vec::new();
        let mut inp = self.image_dim + self.d_class_dim();
        for (i, &w) in self.d_widths.iter().enumerate() {
            v.extend(linear_specs(&format!("d.block{i}.linear"), inp, w));
            inp = w;
        }
        // Column 0 is the real/fake logit; an auxiliary head adds one logit per class.
        v.extend(linear_specs("d.out", inp, 1 + self.aux_classes()));
        let k = self.projected_classes();
        if k > 0 {
            // One embedding row per class, initialised like a Linear layer's weight.
            let [weight, _] = linear_specs("d.embed", inp, k);
            v.push(weight);
        }
        v
    }

    /// The moving averages of the generator's tensors (none when `ema` is 0), named by
    /// [`ema_name`] and starting as copies of the tensors they average.
    pub fn average_specs(&self) -> Vec<ParamSpec> {
        if self.ema <= 0.0 {
            return Vec::new();
        }
        self.generator_specs()
            .into_iter()
            .map(|s| ParamSpec {
                name: ema_name(&s.name),
                trainable: false,
                ..s
            })
            .collect()
    }

    /// The generator tensors that sampling, evaluation and export use: the averages when
    /// the run keeps them, else the trained tensors.
    pub fn sampled_specs(&self) -> Vec<ParamSpec> {
        if self.ema > 0.0 {
            self.average_specs()
        } else {
            self.generator_specs()
        }
    }

    /// Every state tensor: both models, Adam moments and step counters, and G's averages.
    pub fn state_specs(&self) -> Vec<ParamSpec> {
        let (gs, ds) = (self.generator_specs(), self.discriminator_specs());
        let mut v = gs.clone();
        v.extend(ds.clone());
        v.extend(optimizer_state_specs("g", &gs));
        v.extend(optimizer_state_specs("d", &ds));
        v.extend(self.average_specs());
        v
    }

    /// Bytes a CPU training run of this shape holds at its peak, estimated from the tensor
    /// shapes before anything is allocated, so that a configuration the machine cannot hold is
    /// refused with a figure instead of aborting on a failed allocation.
    pub fn memory_estimate(&self) -> MemoryEstimate {
        let floats = |specs: &[ParamSpec]| -> f64 {
            specs
                .iter()
                .map(|s| s.shape.iter().map(|&d| d as f64).product::<f64>())
                .sum()
        };
        let (g, d) = (self.generator_specs(), self.discriminator_specs());
        let state = floats(&self.state_specs());
        let trainable = floats(&g) + floats(&d);
        let (g_units, d_units) = (
            self.g_widths.iter().sum::<usize>() as f64,
            self.d_widths.iter().sum::<usize>() as f64,
        );
        // Per sample: G's linear, BatchNorm and ReLU outputs and the image; D's linear and
        // LeakyReLU outputs for a real and a generated batch; each kept for the backward pass,
        // which writes as many gradients.
        let per_sample = 3.0 * g_units + self.image_dim as f64 + 2.0 * (2.0 * d_units);
        let bytes = |floats: f64| (floats * 4.0) as u64;
        MemoryEstimate {
            // The initial copy on the host, the runtime's two buffers per state tensor, and the
            // copy a checkpoint writes.
            state: bytes(4.0 * state),
            // Gradients and the optimizer's elementwise temporaries, one model at a time.
            gradients: bytes(3.0 * trainable),
            activations: bytes(2.0 * per_sample * self.batch as f64),
        }
    }

    /// Initial state drawn from `seed`, in [`GanConfig::state_specs`] order; each average
    /// starts equal to its tensor.
    pub fn initial_state(&self) -> Vec<NamedTensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let averages = self.average_specs().len();
        let specs = self.state_specs();
        let (drawn, copied) = specs.split_at(specs.len() - averages);
        let mut state: Vec<NamedTensor> = drawn
            .iter()
            .map(|s| NamedTensor {
                data: s.initial(&mut rng),
                name: s.name.clone(),
                shape: s.shape.clone(),
            })
            .collect();
        // The generator's tensors come first, in the order the averages follow.
        let start: Vec<NamedTensor> = state[..averages].to_vec();
        for (t, s) in start.into_iter().zip(copied) {
            state.push(NamedTensor {
                name: s.name.clone(),
                ..t
            });
        }
        state
    }
}
