//! Reads a trained run folder (`mcugan train`'s checkpoint) into the folded float generator.

use crate::float_model::FloatGenerator;
use crate::fold::{BatchNorm, Linear, fold_batchnorm};
use anyhow::{Context, Result};
use checkpoint::run::{OUTPUT_LINEAR, block_batch_norm, block_linear};
use checkpoint::{NamedTensor, Run};
use std::path::Path;

const BN_EPS: f32 = checkpoint::config::BN_EPS as f32;

/// The run and its generator with BatchNorm folded into the Linear layers.
pub fn load_generator(dir: &Path) -> Result<(Run, FloatGenerator)> {
    let run = Run::open(dir)?;
    let tensors = run.generator_tensors()?;
    let cfg = &run.config;
    let get = |name: &str| -> Result<&NamedTensor> {
        tensors
            .iter()
            .find(|t| t.name == name)
            .with_context(|| format!("{}: no tensor {name}", dir.display()))
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
        let bn = |n: &str| get(&format!("{}.{n}", block_batch_norm(i))).map(|t| t.data.clone());
        let norm = BatchNorm {
            gamma: bn("weight")?,
            beta: bn("bias")?,
            running_mean: bn("running_mean")?,
            running_var: bn("running_var")?,
            eps: BN_EPS,
        };
        let folded = fold_batchnorm(&linear(&block_linear(i))?, &norm)
            .with_context(|| format!("{}: folding BatchNorm of block {i}", dir.display()))?;
        layers.push(folded);
    }
    layers.push(linear(OUTPUT_LINEAR)?);
    let model = FloatGenerator {
        latent: cfg.z_dim,
        classes: cfg.classes(),
        layers,
        output: crate::float_model::Output::Sigmoid,
    };
    Ok((run, model))
}
