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
//! `<param>.adam_m`, `<param>.adam_v`; step counters `g.adam_step`, `d.adam_step`.
//! Linear weights are `[out, in]`.

use crate::graph::{DType, GResult, Graph, Id};
use crate::model::{
    NamedTensor, ParamSpec, batch_norm_specs, declare, emit_adam, linear_specs, one_hot,
    optimizer_state_specs, read_state,
};
use crate::ops::{
    batch_norm_eval, batch_norm_train, bce_with_logits, linear, softmax_cross_entropy,
};
use crate::optim::Adam;
use crate::runtime::{Device, Executor, GraphHandle, NEXT, OrtExecutor, RResult, RuntimeError};
use checkpoint::RunConfig;
use checkpoint::run::{BATCH_NORM_TENSORS, OUTPUT_LINEAR, block_batch_norm, block_linear};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::HashMap;

use checkpoint::{Conditioning, IMAGE_DIM};

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

    /// Every state tensor: both models, Adam moments and step counters.
    pub fn state_specs(&self) -> Vec<ParamSpec> {
        let (gs, ds) = (self.generator_specs(), self.discriminator_specs());
        let mut v = gs.clone();
        v.extend(ds.clone());
        v.extend(optimizer_state_specs("g", &gs));
        v.extend(optimizer_state_specs("d", &ds));
        v
    }

    /// Initial state drawn from `seed`, in [`GanConfig::state_specs`] order.
    pub fn initial_state(&self) -> Vec<NamedTensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        self.state_specs()
            .into_iter()
            .map(|s| NamedTensor {
                data: s.initial(&mut rng),
                name: s.name,
                shape: s.shape,
            })
            .collect()
    }
}

/// The generator forward pass; in training mode also the updated running statistics.
fn generator(
    g: &mut Graph,
    cfg: &GanConfig,
    p: &HashMap<String, Id>,
    z: Id,
    onehot: Option<Id>,
    train: bool,
) -> GResult<(Id, Vec<(String, Id)>)> {
    let mut x = match onehot {
        Some(c) => g.concat(&[z, c], 1)?,
        None => z,
    };
    let mut stats = Vec::new();
    for i in 0..cfg.g_widths.len() {
        let l = block_linear(i);
        let h = linear(g, x, p[&format!("{l}.weight")], p[&format!("{l}.bias")])?;
        let bn = block_batch_norm(i);
        let [gamma, beta, rm, rv] = BATCH_NORM_TENSORS.map(|n| p[&format!("{bn}.{n}")]);
        let y = if train {
            let out = batch_norm_train(g, h, gamma, beta, rm, rv)?;
            stats.push((format!("{bn}.running_mean"), out.running_mean));
            stats.push((format!("{bn}.running_var"), out.running_var));
            out.y
        } else {
            batch_norm_eval(g, h, gamma, beta, rm, rv)?
        };
        x = g.relu(y);
    }
    let logits = linear(
        g,
        x,
        p[&format!("{OUTPUT_LINEAR}.weight")],
        p[&format!("{OUTPUT_LINEAR}.bias")],
    )?;
    Ok((g.sigmoid(logits), stats))
}

/// The discriminator's logits: real/fake `[N, 1]`, and class logits `[N, K]` when it has an
/// auxiliary head.
fn discriminator(
    g: &mut Graph,
    cfg: &GanConfig,
    p: &HashMap<String, Id>,
    x: Id,
    onehot: Option<Id>,
) -> GResult<(Id, Option<Id>)> {
    let mut x = match onehot {
        Some(c) if cfg.d_class_dim() > 0 => g.concat(&[x, c], 1)?,
        _ => x,
    };
    for i in 0..cfg.d_widths.len() {
        let l = format!("d.block{i}.linear");
        let h = linear(g, x, p[&format!("{l}.weight")], p[&format!("{l}.bias")])?;
        x = g.leaky_relu(h, cfg.leaky_slope);
    }
    let out = linear(g, x, p["d.out.weight"], p["d.out.bias"])?;
    if let (true, Some(c)) = (cfg.projected_classes() > 0, onehot) {
        // ⟨embed(y), φ(x)⟩ per sample: onehot [N, K] · E [K, H] → [N, H], ⊙ φ, Σ over H.
        let e = g.gemm(c, p["d.embed.weight"], None, false, false)?;
        let ef = g.mul(e, x)?;
        let proj = g.reduce_sum(ef, &[1], true);
        return Ok((g.add(out, proj)?, None));
    }
    let k = cfg.aux_classes() as i64;
    if k == 0 {
        return Ok((out, None));
    }
    let adv = g.slice(out, 1, 0, 1);
    let cls = g.slice(out, 1, 1, 1 + k);
    Ok((adv, Some(cls)))
}

/// `loss + aux_weight · CE(class_logits, onehot)` when D has an auxiliary head.
fn add_aux_loss(
    g: &mut Graph,
    cfg: &GanConfig,
    loss: Id,
    class_logits: Option<Id>,
    onehot: Option<Id>,
) -> GResult<Id> {
    match (class_logits, onehot) {
        (Some(cls), Some(c)) => {
            let ce = softmax_cross_entropy(g, cls, c)?;
            let weighted = g.mul_scalar(ce, cfg.aux_weight)?;
            g.add(loss, weighted)
        }
        _ => Ok(loss),
    }
}

fn inputs(g: &mut Graph, cfg: &GanConfig, n: i64) -> (Id, Option<Id>) {
    let z = g.input("z", &[n, cfg.z_dim as i64]);
    let c = cfg.classes.map(|k| g.input("onehot", &[n, k as i64]));
    (z, c)
}

/// A loss graph before its optimiser: the loss, the parameter inputs, the BatchNorm
/// statistics it updates and its extra outputs. Gradient checks differentiate it directly.
pub struct LossGraph {
    pub graph: Graph,
    pub loss: Id,
    pub params: HashMap<String, Id>,
    pub stats: Vec<(String, Id)>,
    pub extra: Vec<(String, Id)>,
}

/// The discriminator's loss, `(BCE(D(G(z)), 0) + BCE(D(real), t)) / 2` with `t` the real
/// target, plus the auxiliary classifier's cross-entropy on the real images when D has that
/// head; inputs `real` `[B, D]`, `z` and (`onehot`, the real images' classes, which the fakes
/// take too); extra outputs `d_real`, `d_fake` (D's mean probability on each half).
pub fn d_loss_graph(cfg: &GanConfig, dtype: DType) -> GResult<LossGraph> {
    let mut g = Graph::new(dtype);
    let b = cfg.batch as i64;
    let (gs, ds) = (cfg.generator_specs(), cfg.discriminator_specs());
    let mut p = declare(&mut g, &gs);
    p.extend(declare(&mut g, &ds));
    let real = g.input("real", &[b, cfg.image_dim as i64]);
    let (z, onehot) = inputs(&mut g, cfg, b);
    let (fake, stats) = generator(&mut g, cfg, &p, z, onehot, true)?;
    // One pass of D over [fake; real] (D has no batch statistics, so this equals two passes).
    let x = g.concat(&[fake, real], 0)?;
    let c2 = match onehot {
        Some(c) => Some(g.concat(&[c, c], 0)?),
        None => None,
    };
    let (logits, cls) = discriminator(&mut g, cfg, &p, x, c2)?;
    let targets: Vec<f64> = (0..2 * b)
        .map(|i| if i < b { 0.0 } else { cfg.real_target })
        .collect();
    let t = g.constant(targets, &[2 * b, 1]);
    // (BCE(fake, 0) + BCE(real, t)) / 2 over equal halves = the mean over both.
    let loss = bce_with_logits(&mut g, logits, t)?;
    // The classifier head learns from real images only: fakes would teach it G's mistakes.
    let cls_real = cls.map(|c| g.slice(c, 0, b, 2 * b));
    let loss = add_aux_loss(&mut g, cfg, loss, cls_real, onehot)?;
    let prob = g.sigmoid(logits);
    let pf = g.slice(prob, 0, 0, b);
    let pr = g.slice(prob, 0, b, 2 * b);
    let d_fake = g.mean_all(pf);
    let d_real = g.mean_all(pr);
    Ok(LossGraph {
        graph: g,
        loss,
        params: p,
        stats,
        extra: vec![("d_real".into(), d_real), ("d_fake".into(), d_fake)],
    })
}

/// The generator's loss `BCE(D(G(z)), 1)`, plus the auxiliary cross-entropy of D's class
/// prediction against the intended class when D has that head; inputs `z` and (`onehot`).
pub fn g_loss_graph(cfg: &GanConfig, dtype: DType) -> GResult<LossGraph> {
    let mut g = Graph::new(dtype);
    let b = cfg.batch as i64;
    let (gs, ds) = (cfg.generator_specs(), cfg.discriminator_specs());
    let mut p = declare(&mut g, &gs);
    p.extend(declare(&mut g, &ds));
    let (z, onehot) = inputs(&mut g, cfg, b);
    let (fake, stats) = generator(&mut g, cfg, &p, z, onehot, true)?;
    let (logits, cls) = discriminator(&mut g, cfg, &p, fake, onehot)?;
    let ones = g.constant(vec![1.0], &[1, 1]);
    let loss = bce_with_logits(&mut g, logits, ones)?;
    let loss = add_aux_loss(&mut g, cfg, loss, cls, onehot)?;
    Ok(LossGraph {
        graph: g,
        loss,
        params: p,
        stats,
        extra: vec![],
    })
}

/// Adds Adam for `specs` (model `model`) and the outputs to a loss graph.
fn step_graph(
    mut lg: LossGraph,
    model: &str,
    specs: &[ParamSpec],
    adam: &Adam,
    loss_name: &str,
) -> GResult<Graph> {
    emit_adam(&mut lg.graph, model, specs, &lg.params, lg.loss, adam)?;
    for (name, id) in lg.stats {
        lg.graph.output(&format!("{NEXT}{name}"), id)?;
    }
    lg.graph.output(loss_name, lg.loss)?;
    for (name, id) in lg.extra {
        lg.graph.output(&name, id)?;
    }
    Ok(lg.graph)
}

/// Discriminator step: the D loss, Adam on D only (the fakes are detached), and G's running
/// statistics updated by its forward pass; outputs `d_loss`, `d_real`, `d_fake`.
pub fn d_step_graph(cfg: &GanConfig, dtype: DType) -> GResult<Graph> {
    step_graph(
        d_loss_graph(cfg, dtype)?,
        "d",
        &cfg.discriminator_specs(),
        &cfg.d_adam,
        "d_loss",
    )
}

/// Generator step: the G loss, gradients through D, Adam on G only; outputs `g_loss`.
pub fn g_step_graph(cfg: &GanConfig, dtype: DType) -> GResult<Graph> {
    step_graph(
        g_loss_graph(cfg, dtype)?,
        "g",
        &cfg.generator_specs(),
        &cfg.g_adam,
        "g_loss",
    )
}

/// Generation: `z` `[n, z_dim]`, (`onehot`) → `image` `[n, D]`, BatchNorm in eval mode (or
/// with batch statistics when `train_mode`, leaving the running statistics alone).
pub fn generate_graph(cfg: &GanConfig, n: i64, train_mode: bool, dtype: DType) -> GResult<Graph> {
    let mut g = Graph::new(dtype);
    let p = declare(&mut g, &cfg.generator_specs());
    let (z, onehot) = inputs(&mut g, cfg, n);
    let (img, _) = generator(&mut g, cfg, &p, z, onehot, train_mode)?;
    g.output("image", img)?;
    Ok(g)
}

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
    d_step: GraphHandle,
    g_step: GraphHandle,
    generate: HashMap<usize, GraphHandle>,
    rng: ChaCha8Rng,
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
        let d_step = exec.load(&d_step_graph(&cfg, DType::F32)?, "d_step")?;
        let g_step = exec.load(&g_step_graph(&cfg, DType::F32)?, "g_step")?;
        // The noise stream is independent of the initialisation stream.
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x9E37_79B9_7F4A_7C15);
        Ok(GanTrainer {
            cfg,
            exec,
            d_step,
            g_step,
            generate: HashMap::new(),
            rng,
        })
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

    /// One GAN step (D step, then G step) on a real batch (`batch × image_dim` pixels in
    /// [0, 1]) with its labels (ignored when unconditional), drawing the noise itself.
    pub fn step(&mut self, real: &[f32], labels: &[u8]) -> RResult<StepLosses> {
        let zd = self.draw_noise(self.cfg.batch);
        let zg = self.draw_noise(self.cfg.batch);
        self.step_with_noise(real, labels, &zd, &zg)
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
        let b = self.cfg.batch;
        let onehot = self.onehot(labels, b)?;
        let mut feeds: Vec<(&str, &[f32])> = vec![("real", real), ("z", z_d)];
        if let Some(c) = &onehot {
            feeds.push(("onehot", c));
        }
        let d = self
            .exec
            .run(self.d_step, &feeds, &["d_loss", "d_real", "d_fake"])?;
        let mut feeds: Vec<(&str, &[f32])> = vec![("z", z_g)];
        if let Some(c) = &onehot {
            feeds.push(("onehot", c));
        }
        let gl = self.exec.run(self.g_step, &feeds, &["g_loss"])?;
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

    /// The generator's parameters and running statistics (what export needs).
    pub fn generator_state(&self) -> RResult<Vec<NamedTensor>> {
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

/// Checks that `tensors` holds exactly the tensors of `specs`, with their shapes and sizes.
pub(crate) fn check_state(specs: &[ParamSpec], tensors: &[NamedTensor]) -> RResult<()> {
    for s in specs {
        let Some(t) = tensors.iter().find(|t| t.name == s.name) else {
            return Err(RuntimeError::Usage(format!(
                "state tensor `{}` is missing",
                s.name
            )));
        };
        if t.shape != s.shape || t.data.len() != s.len().max(1) {
            return Err(RuntimeError::Usage(format!(
                "state tensor `{}` has shape {:?} ({} values), the model needs {:?}",
                s.name,
                t.shape,
                t.data.len(),
                s.shape
            )));
        }
    }
    if let Some(t) = tensors
        .iter()
        .find(|t| !specs.iter().any(|s| s.name == t.name))
    {
        return Err(RuntimeError::Usage(format!(
            "state tensor `{}` does not belong to this model",
            t.name
        )));
    }
    Ok(())
}

/// The float generator in eval mode as a standalone ONNX model: input `z` `[N, z_dim]` (and
/// `class_onehot` `[N, classes]` when conditional), output `image` `[N, image_dim]`, the
/// parameters (from [`GanTrainer::generator_state`]) stored as initializers.
pub fn generator_onnx(cfg: &GanConfig, params: &[NamedTensor]) -> RResult<Vec<u8>> {
    let specs = cfg.generator_specs();
    check_state(&specs, params)?;
    let mut g = Graph::new(DType::F32);
    let mut p = HashMap::new();
    for s in &specs {
        let t = params.iter().find(|t| t.name == s.name).expect("checked");
        let id = g.constant(t.data.iter().map(|&x| x as f64).collect(), &s.shape_i64());
        p.insert(s.name.clone(), id);
    }
    let z = g.input("z", &[-1, cfg.z_dim as i64]);
    let c = cfg
        .classes
        .map(|k| g.input("class_onehot", &[-1, k as i64]));
    let (img, _) = generator(&mut g, cfg, &p, z, c, false)?;
    g.output("image", img)?;
    let mut model = crate::graph::onnx::to_model(&g, "generator");
    // Name the initializers after the parameters, for viewers and for the exporter.
    if let Some(graph) = model.graph.as_mut() {
        let renames: HashMap<String, String> = specs
            .iter()
            .map(|s| (format!("t{}", p[&s.name].0), s.name.clone()))
            .collect();
        for init in &mut graph.initializer {
            if let Some(n) = renames.get(&init.name) {
                init.name = n.clone();
            }
        }
        for node in &mut graph.node {
            for i in &mut node.input {
                if let Some(n) = renames.get(i) {
                    *i = n.clone();
                }
            }
        }
    }
    Ok(prost::Message::encode_to_vec(&model))
}
