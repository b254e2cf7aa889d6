//! One run folder opened for reading: its configuration, its checkpoint, and the generator's
//! tensors under the names and shapes the trainer gives them.

use crate::config::{IMAGE_DIM, RunConfig};
use crate::file::{self, Checkpoint, CheckpointError, NamedTensor, TENSORS_FILE};
use std::path::{Path, PathBuf};

/// The float generator as a standalone ONNX model (BatchNorm in eval mode), written by the
/// trainer beside each checkpoint; export's verification runs it as the reference.
pub const GENERATOR_ONNX: &str = "generator.onnx";

/// Prefix of the generator's hidden block `i`'s Linear layer (`.weight` `[out, in]`, `.bias`).
pub fn block_linear(i: usize) -> String {
    format!("g.block{i}.linear")
}

/// Prefix of block `i`'s BatchNorm (`.weight`, `.bias`, `.running_mean`, `.running_var`).
pub fn block_batch_norm(i: usize) -> String {
    format!("g.block{i}.bn")
}

/// Prefix of the generator's output Linear layer.
pub const OUTPUT_LINEAR: &str = "g.out";

/// The BatchNorm tensors' suffixes, in the order the trainer declares them.
pub const BATCH_NORM_TENSORS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

/// The moving average of generator tensor `name`, kept when the run's `ema` is set.
pub fn ema_name(name: &str) -> String {
    format!("{name}.ema")
}

/// Every generator tensor of `cfg` with its shape, input to output: the checkpoint's schema.
pub fn generator_shapes(cfg: &RunConfig) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    let mut inputs = cfg.z_dim + cfg.classes();
    for (i, &w) in cfg.g_widths.iter().enumerate() {
        let linear = block_linear(i);
        v.push((format!("{linear}.weight"), vec![w, inputs]));
        v.push((format!("{linear}.bias"), vec![w]));
        let bn = block_batch_norm(i);
        v.extend(BATCH_NORM_TENSORS.map(|t| (format!("{bn}.{t}"), vec![w])));
        inputs = w;
    }
    v.push((format!("{OUTPUT_LINEAR}.weight"), vec![IMAGE_DIM, inputs]));
    v.push((format!("{OUTPUT_LINEAR}.bias"), vec![IMAGE_DIM]));
    v
}

/// A run folder with its configuration and checkpoint loaded and checked.
#[derive(Clone, Debug)]
pub struct Run {
    pub dir: PathBuf,
    pub config: RunConfig,
    pub checkpoint: Checkpoint,
}

impl Run {
    /// Loads the checkpoint in `dir` and the configuration stored in its metadata.
    pub fn open(dir: &Path) -> Result<Run, CheckpointError> {
        let checkpoint = file::load(dir)?;
        let path = dir.join(TENSORS_FILE);
        let config = serde_json::from_str(checkpoint.meta(&path, "config")?).map_err(|e| {
            CheckpointError::Config {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(Run {
            dir: dir.to_path_buf(),
            config,
            checkpoint,
        })
    }

    /// The tensors `schema` names, each checked against its shape.
    pub fn tensors(
        &self,
        schema: &[(String, Vec<usize>)],
    ) -> Result<Vec<NamedTensor>, CheckpointError> {
        self.checkpoint
            .named_tensors(&self.dir.join(TENSORS_FILE), schema)
    }

    /// The generator's tensors ([`generator_shapes`]) as it samples: their moving averages
    /// ([`ema_name`]) when the run keeps them, under the plain names.
    pub fn generator_tensors(&self) -> Result<Vec<NamedTensor>, CheckpointError> {
        let shapes = generator_shapes(&self.config);
        if self.config.ema <= 0.0 {
            return self.tensors(&shapes);
        }
        let averaged: Vec<_> = shapes
            .iter()
            .map(|(n, s)| (ema_name(n), s.clone()))
            .collect();
        let mut tensors = self.tensors(&averaged)?;
        for (t, (name, _)) in tensors.iter_mut().zip(shapes) {
            t.name = name;
        }
        Ok(tensors)
    }

    /// Where the trainer wrote the float generator's ONNX model ([`GENERATOR_ONNX`]).
    pub fn generator_onnx(&self) -> PathBuf {
        self.dir.join(GENERATOR_ONNX)
    }
}
