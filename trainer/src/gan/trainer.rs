//! A GAN being trained: its state in an executor, its noise from a seeded RNG.

use super::{GanConfig, d_step_graph, g_step_graph, generate_graph};
use crate::graph::DType;
use crate::model::{LR_SCALE, NamedTensor, check_state, one_hot, read_state};
use crate::runtime::{Device, Executor, GraphHandle, OrtExecutor, RResult, RuntimeError};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::HashMap;

/// The losses of one GAN step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLosses {
    pub d_loss: f32,
    pub g_loss: f32,
    /// D's mean probability of "real" on the real half and the fake half of its step.
    pub d_real: f32,
    pub d_fake: f32,
}

/// A GAN being trained: the state lives in the executor, noise comes from a seeded RNG.
pub struct GanTrainer {
    cfg: GanConfig,
    exec: Box<dyn Executor>,
    /// The D and G step graphs by batch size: a run whose batch grows loads one pair per size,
    /// all over the same state.
    steps: HashMap<usize, (GraphHandle, GraphHandle)>,
    generate: HashMap<usize, GraphHandle>,
    rng: ChaCha8Rng,
    /// Multiplies both learning rates (a schedule's value for the next step).
    lr_scale: f32,
}

impl GanTrainer {
    /// A trainer on ONNX Runtime (`Device::Cuda` falls back to the CPU with a message).
    pub fn new(cfg: GanConfig, device: Device) -> RResult<Self> {
        Self::with_executor(cfg, Box::new(OrtExecutor::new(device)?))
    }

    /// A trainer on any executor (tests use [`crate::runtime::TractExecutor`]).
    pub fn with_executor(cfg: GanConfig, mut exec: Box<dyn Executor>) -> RResult<Self> {
        cfg.validate()?;
        for t in cfg.initial_state() {
            exec.set_state(&t.name, &t.shape, &t.data)?;
        }
        // The noise stream is independent of the initialisation stream.
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x9E37_79B9_7F4A_7C15);
        let mut t = GanTrainer {
            cfg,
            exec,
            steps: HashMap::new(),
            generate: HashMap::new(),
            rng,
            lr_scale: 1.0,
        };
        t.step_graphs(t.cfg.batch)?;
        Ok(t)
    }

    /// The step graphs for batches of `b`, built on first use.
    fn step_graphs(&mut self, b: usize) -> RResult<(GraphHandle, GraphHandle)> {
        if let Some(&h) = self.steps.get(&b) {
            return Ok(h);
        }
        let cfg = GanConfig {
            batch: b,
            ..self.cfg.clone()
        };
        cfg.validate()?;
        let fusion = self.exec.fusion();
        let d = self
            .exec
            .load(&d_step_graph(&cfg, DType::F32, fusion)?, "d_step")?;
        let g = self
            .exec
            .load(&g_step_graph(&cfg, DType::F32, fusion)?, "g_step")?;
        self.steps.insert(b, (d, g));
        Ok((d, g))
    }

    pub fn config(&self) -> &GanConfig {
        &self.cfg
    }

    /// Runtime and device, e.g. "ONNX Runtime (cpu, 2 threads)".
    pub fn describe(&self) -> String {
        self.exec.describe()
    }

    /// Standard-normal noise for `n` samples, from the trainer's RNG.
    pub fn draw_noise(&mut self, n: usize) -> Vec<f32> {
        (0..n * self.cfg.z_dim)
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect()
    }

    /// The noise RNG's position, for checkpoints: (seed, stream, word position).
    pub fn rng_state(&self) -> ([u8; 32], u64, u128) {
        (
            self.rng.get_seed(),
            self.rng.get_stream(),
            self.rng.get_word_pos(),
        )
    }

    /// Restores a position saved by [`GanTrainer::rng_state`].
    pub fn set_rng_state(&mut self, state: ([u8; 32], u64, u128)) {
        let mut rng = ChaCha8Rng::from_seed(state.0);
        rng.set_stream(state.1);
        rng.set_word_pos(state.2);
        self.rng = rng;
    }

    /// Scales both learning rates from the next step on (a schedule's value, in (0, 1]).
    pub fn set_lr_scale(&mut self, scale: f32) -> RResult<()> {
        if !(scale > 0.0 && scale <= 1.0) {
            return Err(RuntimeError::Usage(format!(
                "the learning-rate scale must be in (0, 1], not {scale}"
            )));
        }
        self.lr_scale = scale;
        Ok(())
    }

    /// Steps taken so far (the discriminator's Adam counter).
    pub fn steps(&self) -> RResult<u64> {
        Ok(self.exec.state("d.adam_step")?.1[0] as u64)
    }

    fn onehot(&self, labels: &[u8], n: usize) -> RResult<Option<Vec<f32>>> {
        match self.cfg.classes {
            None => Ok(None),
            Some(k) => {
                if labels.len() != n {
                    return Err(RuntimeError::Usage(format!(
                        "a conditional GAN needs one label per sample: {} labels for {n} samples",
                        labels.len()
                    )));
                }
                if let Some(&l) = labels.iter().find(|&&l| l as usize >= k) {
                    return Err(RuntimeError::Usage(format!(
                        "label {l} out of range for {k} classes"
                    )));
                }
                Ok(Some(one_hot(labels, k)))
            }
        }
    }

    /// One GAN step (D step, then G step) on a real batch (`n × image_dim` pixels in [0, 1],
    /// `n` the configured batch or any other of at least 2) with its labels (ignored when
    /// unconditional), drawing the noise itself.
    pub fn step(&mut self, real: &[f32], labels: &[u8]) -> RResult<StepLosses> {
        let b = self.batch_of(real)?;
        let zd = self.draw_noise(b);
        let zg = self.draw_noise(b);
        self.step_with_noise(real, labels, &zd, &zg)
    }

    /// How many images `real` holds.
    fn batch_of(&self, real: &[f32]) -> RResult<usize> {
        let d = self.cfg.image_dim;
        if real.is_empty() || !real.len().is_multiple_of(d) {
            return Err(RuntimeError::Usage(format!(
                "a real batch of {} pixels is not a whole number of {d}-pixel images",
                real.len()
            )));
        }
        Ok(real.len() / d)
    }

    /// One GAN step with given noise for the D step (`z_d`) and the G step (`z_g`); the fakes
    /// of both take the real batch's labels.
    pub fn step_with_noise(
        &mut self,
        real: &[f32],
        labels: &[u8],
        z_d: &[f32],
        z_g: &[f32],
    ) -> RResult<StepLosses> {
        let b = self.batch_of(real)?;
        let (d_step, g_step) = self.step_graphs(b)?;
        let onehot = self.onehot(labels, b)?;
        let scale = [self.lr_scale];
        let mut feeds: Vec<(&str, &[f32])> = vec![("real", real), ("z", z_d), (LR_SCALE, &scale)];
        if let Some(c) = &onehot {
            feeds.push(("onehot", c));
        }
        let d = self
            .exec
            .run(d_step, &feeds, &["d_loss", "d_real", "d_fake"])?;
        let mut feeds: Vec<(&str, &[f32])> = vec![("z", z_g), (LR_SCALE, &scale)];
        if let Some(c) = &onehot {
            feeds.push(("onehot", c));
        }
        let gl = self.exec.run(g_step, &feeds, &["g_loss"])?;
        Ok(StepLosses {
            d_loss: d[0][0],
            g_loss: gl[0][0],
            d_real: d[1][0],
            d_fake: d[2][0],
        })
    }

    /// Images `[n, image_dim]` from noise `z` `[n, z_dim]` (and labels when conditional), with
    /// BatchNorm in eval mode.
    pub fn generate(&mut self, z: &[f32], labels: &[u8]) -> RResult<Vec<f32>> {
        let n = z.len() / self.cfg.z_dim;
        if n == 0 || n * self.cfg.z_dim != z.len() {
            return Err(RuntimeError::Usage(format!(
                "noise of {} values is not a whole number of {}-dimensional vectors",
                z.len(),
                self.cfg.z_dim
            )));
        }
        let onehot = self.onehot(labels, n)?;
        let h = match self.generate.get(&n) {
            Some(h) => *h,
            None => {
                let g = generate_graph(&self.cfg, n as i64, false, DType::F32)?;
                let h = self.exec.load(&g, "generate")?;
                self.generate.insert(n, h);
                h
            }
        };
        let mut feeds: Vec<(&str, &[f32])> = vec![("z", z)];
        if let Some(c) = &onehot {
            feeds.push(("onehot", c));
        }
        Ok(self.exec.run(h, &feeds, &["image"])?.remove(0))
    }

    /// Every state tensor (parameters, statistics, moments, step counters), in
    /// [`GanConfig::state_specs`] order.
    pub fn state(&self) -> RResult<Vec<NamedTensor>> {
        read_state(self.exec.as_ref(), self.cfg.state_specs())
    }

    /// The generator's parameters and running statistics as it samples (the moving averages,
    /// when kept), under the plain names: what export needs.
    pub fn generator_state(&self) -> RResult<Vec<NamedTensor>> {
        let mut tensors = read_state(self.exec.as_ref(), self.cfg.sampled_specs())?;
        for (t, plain) in tensors.iter_mut().zip(self.cfg.generator_specs()) {
            t.name = plain.name;
        }
        Ok(tensors)
    }

    /// The generator's trained tensors (not the averages), for tests of the average.
    pub fn trained_generator_state(&self) -> RResult<Vec<NamedTensor>> {
        read_state(self.exec.as_ref(), self.cfg.generator_specs())
    }

    /// Replaces the whole state (e.g. from a checkpoint). Every tensor of
    /// [`GanConfig::state_specs`] must be present with its shape; nothing changes otherwise.
    pub fn load_state(&mut self, tensors: &[NamedTensor]) -> RResult<()> {
        let specs = self.cfg.state_specs();
        check_state(&specs, tensors)?;
        for t in tensors {
            self.exec.set_state(&t.name, &t.shape, &t.data)?;
        }
        Ok(())
    }
}
