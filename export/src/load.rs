//! Reads a trained run folder (`mcugan train`'s checkpoint) into the folded float generator.

use crate::float_model::FloatGenerator;
use crate::fold::{BatchNorm, Linear, fold_batchnorm};
use anyhow::{Context, Result};
use std::path::Path;
use trainer::NamedTensor;
use trainer::train::RunConfig;

/// PyTorch's BatchNorm1d epsilon, as the trainer uses.
const BN_EPS: f32 = trainer::ops::BN_EPS as f32;

/// The run's configuration and its generator with BatchNorm folded into the Linear layers.
pub fn load_generator(run: &Path) -> Result<(RunConfig, FloatGenerator)> {
    let (cfg, ck) = trainer::train::load_config(run)?;
    let tensors = trainer::train::generator_tensors(&cfg, &ck, run)?;
    let get = |name: &str| -> Result<&NamedTensor> {
        tensors
            .iter()
            .find(|t| t.name == name)
            .with_context(|| format!("{}: no tensor {name}", run.display()))
    };
    let linear = |prefix: &str| -> Result<Linear> {
        let (w, b) = (
            get(&format!("{prefix}.weight"))?,
            get(&format!("{prefix}.bias"))?,
        );
        Ok(Linear {
            inputs: w.shape[1],
            outputs: w.shape[0],
            weight: w.data.clone(),
            bias: b.data.clone(),
        })
    };
    let mut layers = Vec::new();
    for i in 0..cfg.g_widths.len() {
        let bn = |n: &str| get(&format!("g.block{i}.bn.{n}")).map(|t| t.data.clone());
        let norm = BatchNorm {
            gamma: bn("weight")?,
            beta: bn("bias")?,
            running_mean: bn("running_mean")?,
            running_var: bn("running_var")?,
            eps: BN_EPS,
        };
        let folded = fold_batchnorm(&linear(&format!("g.block{i}.linear"))?, &norm)
            .with_context(|| format!("{}: folding BatchNorm of block {i}", run.display()))?;
        layers.push(folded);
    }
    layers.push(linear("g.out")?);
    let classes = if cfg.conditional { 10 } else { 0 };
    Ok((
        cfg.clone(),
        FloatGenerator {
            latent: cfg.z_dim,
            classes,
            layers,
        },
    ))
}
