//! What the models' parameters are called, their shapes and their initial values, and the
//! shared plumbing that turns a list of parameters into graph inputs and Adam updates.

use crate::graph::{GResult, Graph, Id};
use crate::optim::{Adam, AdamSlot, Fusion, adam_step};
use crate::runtime::{Executor, NEXT, RResult, RuntimeError};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

pub use checkpoint::NamedTensor;

/// The names and shapes of `specs`, as a checkpoint is read by.
pub fn schema(specs: Vec<ParamSpec>) -> Vec<(String, Vec<usize>)> {
    specs.into_iter().map(|s| (s.name, s.shape)).collect()
}

/// How a tensor starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(-b, b): PyTorch's default for Linear weights and biases, b = 1/√fan_in.
    Uniform(f32),
    Zeros,
    Ones,
}

/// One tensor of a model: its name, shape, start value and whether Adam trains it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    pub trainable: bool,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn shape_i64(&self) -> Vec<i64> {
        self.shape.iter().map(|&d| d as i64).collect()
    }
    /// Draws the initial value.
    pub fn initial(&self, rng: &mut ChaCha8Rng) -> Vec<f32> {
        match self.init {
            Init::Zeros => vec![0.0; self.len()],
            Init::Ones => vec![1.0; self.len()],
            Init::Uniform(b) => (0..self.len()).map(|_| rng.random_range(-b..=b)).collect(),
        }
    }
}

/// Linear layer `prefix.weight` `[out, inp]` and `prefix.bias` `[out]`, PyTorch-initialised.
pub fn linear_specs(prefix: &str, inp: usize, out: usize) -> [ParamSpec; 2] {
    let b = 1.0 / (inp as f32).sqrt();
    [
        ParamSpec {
            name: format!("{prefix}.weight"),
            shape: vec![out, inp],
            init: Init::Uniform(b),
            trainable: true,
        },
        ParamSpec {
            name: format!("{prefix}.bias"),
            shape: vec![out],
            init: Init::Uniform(b),
            trainable: true,
        },
    ]
}

/// BatchNorm1d `prefix.{weight,bias}` (trained) and `prefix.running_{mean,var}` (statistics).
pub fn batch_norm_specs(prefix: &str, c: usize) -> [ParamSpec; 4] {
    let spec = |n: &str, init, trainable| ParamSpec {
        name: format!("{prefix}.{n}"),
        shape: vec![c],
        init,
        trainable,
    };
    // In `checkpoint::run::BATCH_NORM_TENSORS` order: γ, β, then the running statistics.
    let [weight, bias, mean, var] = checkpoint::run::BATCH_NORM_TENSORS;
    [
        spec(weight, Init::Ones, true),
        spec(bias, Init::Zeros, true),
        spec(mean, Init::Zeros, false),
        spec(var, Init::Ones, false),
    ]
}

/// Adam's first and second moment of parameter `p`, and a model's step counter.
pub fn adam_m(p: &str) -> String {
    format!("{p}.adam_m")
}
pub fn adam_v(p: &str) -> String {
    format!("{p}.adam_v")
}
pub fn adam_step_name(model: &str) -> String {
    format!("{model}.adam_step")
}

/// Every state tensor of a model trained by Adam: the specs, their two moments for the
/// trainable ones, and the step counter (a scalar, shape `[]`).
pub fn optimizer_state_specs(model: &str, specs: &[ParamSpec]) -> Vec<ParamSpec> {
    let mut out = Vec::new();
    for s in specs.iter().filter(|s| s.trainable) {
        for name in [adam_m(&s.name), adam_v(&s.name)] {
            out.push(ParamSpec {
                name,
                shape: s.shape.clone(),
                init: Init::Zeros,
                trainable: false,
            });
        }
    }
    out.push(ParamSpec {
        name: adam_step_name(model),
        shape: vec![],
        init: Init::Zeros,
        trainable: false,
    });
    out
}

/// Declares each spec as a graph input named after it.
pub fn declare(g: &mut Graph, specs: &[ParamSpec]) -> HashMap<String, Id> {
    specs
        .iter()
        .map(|s| (s.name.clone(), g.input(&s.name, &s.shape_i64())))
        .collect()
}

/// What an Adam update left in the graph: each trained parameter's new value by name, and
/// the incremented step count.
pub struct Updated {
    pub params: HashMap<String, Id>,
    pub step: Id,
}

/// The scalar input that scales a scheduled model's learning rate ([`emit_adam`]'s `scheduled`).
pub const LR_SCALE: &str = "lr_scale";

/// Differentiates `loss` with respect to the trainable `specs` and emits their Adam update
/// in the executor's `fusion`, writing `next.` outputs for parameters, moments and the step
/// counter. When `scheduled`, the learning rate is multiplied by the scalar input
/// [`LR_SCALE`], fed at each step.
#[allow(clippy::too_many_arguments)]
pub fn emit_adam(
    g: &mut Graph,
    model: &str,
    specs: &[ParamSpec],
    ids: &HashMap<String, Id>,
    loss: Id,
    adam: &Adam,
    scheduled: bool,
    fusion: Fusion,
) -> GResult<Updated> {
    let trainable: Vec<&ParamSpec> = specs.iter().filter(|s| s.trainable).collect();
    let wrt: Vec<Id> = trainable.iter().map(|s| ids[&s.name]).collect();
    let grads = crate::autodiff::gradients(g, loss, &wrt, fusion)?;
    let step = g.input(&adam_step_name(model), &[]);
    let mut slots = Vec::new();
    for (s, &grad) in trainable.iter().zip(&grads) {
        let m = g.input(&adam_m(&s.name), &s.shape_i64());
        let v = g.input(&adam_v(&s.name), &s.shape_i64());
        slots.push(AdamSlot {
            param: ids[&s.name],
            m,
            v,
            grad,
        });
    }
    let scale = scheduled.then(|| g.input(LR_SCALE, &[]));
    let (updates, t) = adam_step(g, adam, step, scale, &slots, fusion)?;
    let mut params = HashMap::new();
    for (s, u) in trainable.iter().zip(updates) {
        g.output(&format!("{NEXT}{}", s.name), u.param)?;
        g.output(&format!("{NEXT}{}", adam_m(&s.name)), u.m)?;
        g.output(&format!("{NEXT}{}", adam_v(&s.name)), u.v)?;
        params.insert(s.name.clone(), u.param);
    }
    g.output(&format!("{NEXT}{}", adam_step_name(model)), t)?;
    Ok(Updated { params, step: t })
}

/// Rows of one-hot vectors for `labels`, `classes` wide.
pub fn one_hot(labels: &[u8], classes: usize) -> Vec<f32> {
    let mut v = vec![0.0; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        if (l as usize) < classes {
            v[i * classes + l as usize] = 1.0;
        }
    }
    v
}

/// Reads the tensors named by `specs` out of the runtime, in `specs` order.
pub fn read_state(exec: &dyn Executor, specs: Vec<ParamSpec>) -> RResult<Vec<NamedTensor>> {
    specs
        .into_iter()
        .map(|s| {
            let (shape, data) = exec.state(&s.name)?;
            Ok(NamedTensor {
                name: s.name,
                shape,
                data,
            })
        })
        .collect()
}
/// Checks that `tensors` holds exactly the tensors of `specs`, with their shapes and sizes.
pub fn check_state(specs: &[ParamSpec], tensors: &[NamedTensor]) -> RResult<()> {
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
