//! A run's state on disk: the checkpoint written after each epoch and at the end (every
//! tensor, the loss history, the position in the data and the random streams), and the exact
//! resumption from it.

use super::{Options, Progress, TrainError};
use crate::gan::{GanConfig, GanTrainer};
use anyhow::{Context, Result, bail};
use checkpoint::{Checkpoint, NamedTensor, Run, RunConfig, file::TENSORS_FILE};

/// Every state tensor (both models, optimiser moments, step counters) of a run, each checked
/// against the shape its configuration gives it.
pub fn state_tensors(run: &Run) -> Result<Vec<NamedTensor>> {
    let specs = GanConfig::from_run(&run.config).state_specs();
    Ok(run.tensors(&crate::model::schema(specs))?)
}

pub(super) fn save(
    cfg: &RunConfig,
    opts: &Options,
    gan: &GanTrainer,
    p: &Progress,
    train_seconds: f64,
) -> Result<()> {
    let mut ck = Checkpoint::default();
    ck.insert_all(gan.state()?);
    ck.insert_all([NamedTensor {
        name: "run.history".into(),
        shape: vec![p.history.len(), 5],
        data: p.history.iter().flatten().copied().collect(),
    }]);
    let (seed, stream, word_pos) = gan.rng_state();
    let meta = [
        ("config", serde_json::to_string_pretty(cfg)?),
        ("epoch", p.epoch.to_string()),
        ("offset", p.offset.to_string()),
        ("train_seconds", train_seconds.to_string()),
        (
            "rng_seed",
            seed.iter().map(|b| format!("{b:02x}")).collect(),
        ),
        ("rng_stream", stream.to_string()),
        ("rng_word_pos", word_pos.to_string()),
    ];
    ck.metadata = meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    checkpoint::file::save(&opts.out, &ck)?;
    Ok(())
}

pub(super) fn start_or_resume(
    cfg: &RunConfig,
    opts: &Options,
    gan: &mut GanTrainer,
) -> Result<Progress> {
    let exists = opts.out.join(TENSORS_FILE).exists();
    if !opts.resume {
        if exists {
            return Err(TrainError::RunExists {
                dir: opts.out.clone(),
            }
            .into());
        }
        // A fresh run starts a fresh metrics log.
        let _ = std::fs::remove_file(opts.out.join("metrics.jsonl"));
        return Ok(Progress {
            epoch: 0,
            offset: 0,
            train_seconds: 0.0,
            history: Vec::new(),
        });
    }
    if !exists {
        return Err(TrainError::NothingToResume {
            dir: opts.out.clone(),
            file: TENSORS_FILE,
        }
        .into());
    }
    let run = Run::open(&opts.out)?;
    if let Some((field, checkpoint, requested)) = run.config.resume_conflict(cfg) {
        return Err(TrainError::ConfigMismatch {
            dir: opts.out.clone(),
            field,
            checkpoint,
            requested,
        }
        .into());
    }
    gan.load_state(&state_tensors(&run)?)?;
    let ck = &run.checkpoint;
    let path = opts.out.join(TENSORS_FILE);
    let num = |key: &str| -> Result<f64> {
        let v = ck.meta(&path, key)?;
        v.parse::<f64>()
            .with_context(|| format!("{}: metadata {key} = {v:?} is not a number", path.display()))
    };
    let seed_hex = ck.meta(&path, "rng_seed")?;
    let mut seed = [0u8; 32];
    if seed_hex.len() != 64 {
        bail!(
            "{}: metadata rng_seed is not 32 bytes of hex",
            path.display()
        );
    }
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&seed_hex[2 * i..2 * i + 2], 16)
            .with_context(|| format!("{}: metadata rng_seed is not hex", path.display()))?;
    }
    let word_pos: u128 = ck
        .meta(&path, "rng_word_pos")?
        .parse()
        .with_context(|| format!("{}: metadata rng_word_pos is not a number", path.display()))?;
    gan.set_rng_state((seed, num("rng_stream")? as u64, word_pos));
    let history = match ck.tensors.get("run.history") {
        Some(t) if t.shape.len() == 2 && t.shape[1] == 5 => t
            .data
            .chunks_exact(5)
            .map(|c| [c[0], c[1], c[2], c[3], c[4]])
            .collect(),
        _ => bail!(
            "{}: tensor run.history is missing or not [steps, 5]",
            path.display()
        ),
    };
    // Checkpoints from before the batch could grow count whole batches of the configured size.
    let offset = match ck.metadata.get("offset") {
        Some(_) => num("offset")? as u64,
        None => num("batch")? as u64 * run.config.batch as u64,
    };
    Ok(Progress {
        epoch: num("epoch")? as u64,
        offset,
        train_seconds: num("train_seconds")?,
        history,
    })
}
