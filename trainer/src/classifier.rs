//! An MLP classifier (Linear + ReLU layers, softmax cross-entropy) trained by the same engine:
//! the project's MNIST classifier whose penultimate features and predictions score generators.
//! State names: `c.layer{i}.{weight,bias}` (hidden), `c.out.{weight,bias}`, Adam moments and
//! `c.adam_step`.

use crate::graph::{DType, GResult, Graph, Id};
use crate::model::check_state;
use crate::model::{
    NamedTensor, ParamSpec, declare, emit_adam, linear_specs, one_hot, optimizer_state_specs,
    read_state,
};
use crate::ops::{linear, softmax_cross_entropy};
use crate::optim::{Adam, Fusion};
use crate::runtime::{Device, Executor, GraphHandle, OrtExecutor, RResult, RuntimeError};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// The classifier's shape and recipe.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    pub input: usize,
    pub hidden: Vec<usize>,
    pub classes: usize,
    pub batch: usize,
    pub adam: Adam,
    pub seed: u64,
}

impl MlpConfig {
    /// 784 → 512 → 256 → 10 (ReLU), batch 128, Adam 1e-3.
    pub fn mnist() -> Self {
        MlpConfig {
            input: checkpoint::IMAGE_DIM,
            hidden: vec![512, 256],
            classes: checkpoint::CLASSES,
            batch: 128,
            adam: Adam::new(1e-3, 0.9, 0.999),
            seed: 0,
        }
    }

    pub fn param_specs(&self) -> Vec<ParamSpec> {
        let mut v = Vec::new();
        let mut inp = self.input;
        for (i, &w) in self.hidden.iter().enumerate() {
            v.extend(linear_specs(&format!("c.layer{i}"), inp, w));
            inp = w;
        }
        v.extend(linear_specs("c.out", inp, self.classes));
        v
    }

    pub fn state_specs(&self) -> Vec<ParamSpec> {
        let p = self.param_specs();
        let mut v = p.clone();
        v.extend(optimizer_state_specs("c", &p));
        v
    }

    /// Width of the penultimate features (the last hidden layer, or the input).
    pub fn feature_dim(&self) -> usize {
        self.hidden.last().copied().unwrap_or(self.input)
    }
}

/// Hidden features (after the last ReLU) and logits.
fn forward(g: &mut Graph, cfg: &MlpConfig, p: &HashMap<String, Id>, x: Id) -> GResult<(Id, Id)> {
    let mut h = x;
    for i in 0..cfg.hidden.len() {
        let l = format!("c.layer{i}");
        let y = linear(g, h, p[&format!("{l}.weight")], p[&format!("{l}.bias")])?;
        h = g.relu(y);
    }
    let logits = linear(g, h, p["c.out.weight"], p["c.out.bias"])?;
    Ok((h, logits))
}

/// Training step: `x` `[B, input]`, `onehot` `[B, classes]` → `loss` and the updated state.
pub fn train_step_graph(cfg: &MlpConfig, dtype: DType, fusion: Fusion) -> GResult<Graph> {
    let mut g = Graph::new(dtype);
    let specs = cfg.param_specs();
    let p = declare(&mut g, &specs);
    let b = cfg.batch as i64;
    let x = g.input("x", &[b, cfg.input as i64]);
    let t = g.input("onehot", &[b, cfg.classes as i64]);
    let (_, logits) = forward(&mut g, cfg, &p, x)?;
    let loss = softmax_cross_entropy(&mut g, logits, t)?;
    emit_adam(&mut g, "c", &specs, &p, loss, &cfg.adam, false, fusion)?;
    g.output("loss", loss)?;
    Ok(g)
}

/// Forward only: `x` `[n, input]` → `features` `[n, feature_dim]`, `logits` `[n, classes]`.
pub fn forward_graph(cfg: &MlpConfig, n: i64, dtype: DType) -> GResult<Graph> {
    let mut g = Graph::new(dtype);
    let p = declare(&mut g, &cfg.param_specs());
    let x = g.input("x", &[n, cfg.input as i64]);
    let (f, l) = forward(&mut g, cfg, &p, x)?;
    g.output("features", f)?;
    g.output("logits", l)?;
    Ok(g)
}

/// An MLP classifier being trained or used.
pub struct MlpClassifier {
    cfg: MlpConfig,
    exec: Box<dyn Executor>,
    train: GraphHandle,
    forward: HashMap<usize, GraphHandle>,
}

impl MlpClassifier {
    pub fn new(cfg: MlpConfig, device: Device) -> RResult<Self> {
        Self::with_executor(cfg, Box::new(OrtExecutor::new(device)?))
    }

    pub fn with_executor(cfg: MlpConfig, mut exec: Box<dyn Executor>) -> RResult<Self> {
        if cfg.input == 0 || cfg.classes < 2 || cfg.batch == 0 || cfg.hidden.contains(&0) {
            return Err(RuntimeError::Usage(format!(
                "invalid classifier configuration {cfg:?}"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        for s in cfg.state_specs() {
            exec.set_state(&s.name, &s.shape, &s.initial(&mut rng))?;
        }
        let graph = train_step_graph(&cfg, DType::F32, exec.fusion())?;
        let train = exec.load(&graph, "classifier_step")?;
        Ok(MlpClassifier {
            cfg,
            exec,
            train,
            forward: HashMap::new(),
        })
    }

    pub fn config(&self) -> &MlpConfig {
        &self.cfg
    }

    /// One Adam step on a batch (`batch × input` values, `batch` labels); returns the loss.
    pub fn train_step(&mut self, x: &[f32], labels: &[u8]) -> RResult<f32> {
        if labels.len() != self.cfg.batch {
            return Err(RuntimeError::Usage(format!(
                "{} labels for a batch of {}",
                labels.len(),
                self.cfg.batch
            )));
        }
        let t = one_hot(labels, self.cfg.classes);
        let out = self
            .exec
            .run(self.train, &[("x", x), ("onehot", &t)], &["loss"])?;
        Ok(out[0][0])
    }

    /// Penultimate features and logits for `n = x.len() / input` samples.
    pub fn forward(&mut self, x: &[f32]) -> RResult<(Vec<f32>, Vec<f32>)> {
        let n = x.len() / self.cfg.input;
        if n == 0 || n * self.cfg.input != x.len() {
            return Err(RuntimeError::Usage(format!(
                "{} values is not a whole number of {}-value samples",
                x.len(),
                self.cfg.input
            )));
        }
        let h = match self.forward.get(&n) {
            Some(h) => *h,
            None => {
                let h = self.exec.load(
                    &forward_graph(&self.cfg, n as i64, DType::F32)?,
                    "classifier",
                )?;
                self.forward.insert(n, h);
                h
            }
        };
        let mut out = self.exec.run(h, &[("x", x)], &["features", "logits"])?;
        let logits = out.pop().expect("two outputs");
        let features = out.pop().expect("two outputs");
        Ok((features, logits))
    }

    /// Predicted class of each sample.
    pub fn predict(&mut self, x: &[f32]) -> RResult<Vec<u8>> {
        let (_, logits) = self.forward(x)?;
        let k = self.cfg.classes;
        Ok(logits
            .chunks(k)
            .map(|row| {
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = i;
                    }
                }
                best as u8
            })
            .collect())
    }

    pub fn state(&self) -> RResult<Vec<NamedTensor>> {
        read_state(self.exec.as_ref(), self.cfg.state_specs())
    }

    /// The trained parameters only (what a cached classifier needs).
    pub fn params(&self) -> RResult<Vec<NamedTensor>> {
        read_state(self.exec.as_ref(), self.cfg.param_specs())
    }

    /// Loads parameters saved by [`MlpClassifier::params`] (optimiser state stays as is).
    pub fn load_params(&mut self, tensors: &[NamedTensor]) -> RResult<()> {
        check_state(&self.cfg.param_specs(), tensors)?;
        for t in tensors {
            self.exec.set_state(&t.name, &t.shape, &t.data)?;
        }
        Ok(())
    }

    /// Replaces parameters and optimiser state (from [`MlpClassifier::state`]).
    pub fn load_state(&mut self, tensors: &[NamedTensor]) -> RResult<()> {
        check_state(&self.cfg.state_specs(), tensors)?;
        for t in tensors {
            self.exec.set_state(&t.name, &t.shape, &t.data)?;
        }
        Ok(())
    }
}
