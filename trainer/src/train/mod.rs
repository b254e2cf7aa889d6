//! The training loop people run: epochs over seeded batches, a progress bar, sample grids and
//! loss plots, checkpoints that resume exactly, a clean stop on Ctrl-C, and a hard stop with the
//! last good checkpoint kept when the losses go to NaN or explode.

pub mod config;

pub use config::{Preset, RunConfig};

use crate::checkpoint::{self, Checkpoint, Tensor};
use crate::data::{Dataset, EpochOrder, PIXELS, Split, fill_batch};
use crate::gan::{GanTrainer, generator_onnx};
use crate::model::NamedTensor;
use crate::report::{self, Series};
use crate::runtime::Device;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use thiserror::Error;

/// A loss above this is treated as divergence, like NaN.
const EXPLODED: f32 = 1e4;

/// How and where to run, as opposed to what (the [`RunConfig`]).
#[derive(Clone, Debug)]
pub struct Options {
    /// The run folder: checkpoint, config, samples, plots, metrics.
    pub out: PathBuf,
    pub data_dir: PathBuf,
    pub device: Device,
    /// Continue the run in `out` instead of starting a new one.
    pub resume: bool,
    /// Draw a progress bar (off in tests).
    pub progress: bool,
    /// Set (by a Ctrl-C handler) to stop after the current step with a checkpoint.
    pub stop: Arc<AtomicBool>,
}

/// Why a run ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The requested epochs are done.
    Epochs,
    /// The time budget is spent.
    Budget,
    /// Asked to stop (Ctrl-C); a checkpoint was written.
    Interrupted,
}

/// Losses of every step so far, in order: (step, d_loss, g_loss, D(real), D(fake)).
pub type History = Vec<[f32; 5]>;

/// What a finished (or stopped) run reports.
#[derive(Clone, Debug)]
pub struct Summary {
    pub stop: Stop,
    pub steps: u64,
    pub epoch: u64,
    pub history: History,
    pub train_seconds: f64,
    pub images_per_second: f64,
}

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(
        "training diverged at step {step}: D loss {d_loss}, G loss {g_loss}; stopped, the last good checkpoint in {dir} is kept"
    )]
    Diverged {
        step: u64,
        d_loss: f32,
        g_loss: f32,
        dir: PathBuf,
    },
    #[error(
        "{dir}: the checkpoint was trained with {field} = {checkpoint}, but this run asks for {requested}; start a new run folder (--out) or drop the flag"
    )]
    ConfigMismatch {
        dir: PathBuf,
        field: &'static str,
        checkpoint: String,
        requested: String,
    },
    #[error("{dir} already holds a run; pass --resume to continue it, or choose another --out")]
    RunExists { dir: PathBuf },
    #[error("{dir}: nothing to resume (no {file})")]
    NothingToResume { dir: PathBuf, file: &'static str },
}

/// Where a run stands: what a checkpoint saves besides the tensors.
struct Progress {
    epoch: u64,
    batch: u64,
    /// Training seconds before this process started (from the checkpoint).
    train_seconds: f64,
    history: History,
}

/// Scores the generator at evaluation points (every `eval_every` epochs and at the end); its
/// JSON joins that point's line in `metrics.jsonl`.
pub type Evaluator<'a> = dyn FnMut(&mut GanTrainer) -> Result<serde_json::Value> + 'a;

/// Trains `cfg` as `opts` says; returns when the epochs or the budget are done, or on a stop
/// request, always leaving a checkpoint of where it stopped.
pub fn train(
    cfg: &RunConfig,
    opts: &Options,
    mut evaluate: Option<&mut Evaluator>,
) -> Result<Summary> {
    let mut data = Dataset::load_dir(&opts.data_dir, Split::Train)?;
    if let Some(n) = cfg.subset {
        data = data.take(n);
    }
    let batches_per_epoch =
        EpochOrder::new(data.len(), cfg.seed, 0).batch_count(cfg.batch, true) as u64;
    if batches_per_epoch == 0 {
        bail!(
            "{} training images are fewer than one batch of {}",
            data.len(),
            cfg.batch
        );
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let mut gan = GanTrainer::new(cfg.gan_config(), opts.device)?;
    let mut progress = start_or_resume(cfg, opts, &mut gan)?;
    let fixed = FixedNoise::new(cfg);

    let bar = progress_bar(cfg, opts, batches_per_epoch, &progress);
    let started = Instant::now();
    let seconds = |p: &Progress| p.train_seconds + started.elapsed().as_secs_f64();
    let start_step = progress.history.len();
    let (mut pixels, mut labels) = (vec![0f32; cfg.batch * PIXELS], vec![0u8; cfg.batch]);
    // The last in-loop evaluation: (epoch, scores).
    let mut evaluated: Option<(u64, serde_json::Value)> = None;
    let stop = loop {
        if cfg.epochs.is_some_and(|e| progress.epoch >= e) {
            break Stop::Epochs;
        }
        let order = EpochOrder::new(data.len(), cfg.seed, progress.epoch);
        let mut stopped = None;
        for idx in order.batches(cfg.batch, true).skip(progress.batch as usize) {
            if opts.stop.load(Ordering::SeqCst) {
                stopped = Some(Stop::Interrupted);
                break;
            }
            if cfg.time_budget_s.is_some_and(|b| seconds(&progress) >= b) {
                stopped = Some(Stop::Budget);
                break;
            }
            fill_batch(&data, idx, &mut pixels, &mut labels);
            let l = gan.step(&pixels, &labels)?;
            let step = progress.history.len() as u64 + 1;
            let bad = |v: f32| !v.is_finite() || v.abs() > EXPLODED;
            if bad(l.d_loss) || bad(l.g_loss) {
                bar.abandon();
                return Err(TrainError::Diverged {
                    step,
                    d_loss: l.d_loss,
                    g_loss: l.g_loss,
                    dir: opts.out.clone(),
                }
                .into());
            }
            progress
                .history
                .push([step as f32, l.d_loss, l.g_loss, l.d_real, l.d_fake]);
            progress.batch += 1;
            if step.is_multiple_of(10) {
                update_bar(
                    &bar,
                    cfg,
                    &progress,
                    seconds(&progress),
                    (progress.history.len() - start_step) as f64 * cfg.batch as f64
                        / started.elapsed().as_secs_f64(),
                );
            }
        }
        if let Some(s) = stopped {
            break s;
        }
        progress.epoch += 1;
        progress.batch = 0;
        if progress.epoch.is_multiple_of(cfg.sample_every.max(1)) {
            save(cfg, opts, &gan, &progress, seconds(&progress))?;
            let scores = match evaluate.as_mut() {
                Some(f) if cfg.eval_every > 0 && progress.epoch.is_multiple_of(cfg.eval_every) => {
                    Some(f(&mut gan)?)
                }
                _ => None,
            };
            write_reports(
                cfg,
                opts,
                &mut gan,
                &fixed,
                &progress,
                seconds(&progress),
                scores.clone(),
            )?;
            evaluated = scores.map(|s| (progress.epoch, s));
        }
    };
    let train_seconds = seconds(&progress);
    save(cfg, opts, &gan, &progress, train_seconds)?;
    // A run that ends right after an evaluation point keeps that evaluation (and its line).
    let already = evaluated.filter(|(epoch, _)| *epoch == progress.epoch && progress.batch == 0);
    let scores = match (&already, evaluate.as_mut()) {
        (Some((_, s)), _) => Some(s.clone()),
        (None, Some(f)) if stop != Stop::Interrupted => Some(f(&mut gan)?),
        _ => None,
    };
    if let Some(s) = &scores {
        checkpoint::write_atomic(
            &opts.out.join("eval.json"),
            serde_json::to_string_pretty(s)?.as_bytes(),
        )?;
    }
    if already.is_none() {
        write_reports(
            cfg,
            opts,
            &mut gan,
            &fixed,
            &progress,
            train_seconds,
            scores,
        )?;
    }
    let onnx = generator_onnx(&gan.config().clone(), &gan.generator_state()?)?;
    checkpoint::write_atomic(&opts.out.join("generator.onnx"), &onnx)?;
    bar.finish_and_clear();
    let run_steps = (progress.history.len() - start_step) as f64;
    Ok(Summary {
        stop,
        steps: progress.history.len() as u64,
        epoch: progress.epoch,
        train_seconds,
        images_per_second: run_steps * cfg.batch as f64 / started.elapsed().as_secs_f64().max(1e-9),
        history: progress.history,
    })
}

fn progress_bar(
    cfg: &RunConfig,
    opts: &Options,
    batches_per_epoch: u64,
    p: &Progress,
) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    // With an epoch count the bar counts steps; with only a time budget it counts seconds.
    let (len, pos) = match (cfg.epochs, cfg.time_budget_s) {
        (Some(e), _) => (e * batches_per_epoch, p.history.len() as u64),
        (None, Some(b)) => (b.ceil() as u64, p.train_seconds as u64),
        (None, None) => (0, 0),
    };
    let bar = ProgressBar::new(len).with_position(pos);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30.cyan/blue} {percent:>3}% {elapsed_precise} ETA {eta} {msg}",
        )
        .expect("valid template"),
    );
    bar
}

fn update_bar(bar: &ProgressBar, cfg: &RunConfig, p: &Progress, seconds: f64, images_per_s: f64) {
    let window = &p.history[p.history.len().saturating_sub(50)..];
    let mean = |k: usize| window.iter().map(|h| h[k]).sum::<f32>() / window.len().max(1) as f32;
    if cfg.epochs.is_some() {
        bar.set_position(p.history.len() as u64);
    } else {
        bar.set_position(seconds as u64);
    }
    bar.set_message(format!(
        "epoch {} step {} D {:.3} G {:.3} {:.0} img/s",
        p.epoch + 1,
        p.history.len(),
        mean(1),
        mean(2),
        images_per_s
    ));
}

/// Noise (and classes) fixed for the whole run, so sample grids are comparable over time:
/// for a conditional model one row per class.
struct FixedNoise {
    z: Vec<f32>,
    labels: Vec<u8>,
    cols: usize,
}

impl FixedNoise {
    fn new(cfg: &RunConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5A3F_11E5);
        let (n, cols) = (100, 10);
        let z = (0..n * cfg.z_dim)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let labels = if cfg.conditional {
            (0..n).map(|i| (i / cols) as u8).collect()
        } else {
            Vec::new()
        };
        FixedNoise { z, labels, cols }
    }
}

fn write_reports(
    cfg: &RunConfig,
    opts: &Options,
    gan: &mut GanTrainer,
    fixed: &FixedNoise,
    p: &Progress,
    seconds: f64,
    scores: Option<serde_json::Value>,
) -> Result<()> {
    let images = gan.generate(&fixed.z, &fixed.labels)?;
    report::sample_grid(&images, fixed.cols, 2, &opts.out.join("samples.png"))?;
    let smooth = |k: usize| -> Vec<(f64, f64)> {
        let w = (p.history.len() / 300).max(1);
        p.history
            .chunks(w)
            .map(|c| {
                (
                    c[c.len() - 1][0] as f64,
                    c.iter().map(|h| h[k] as f64).sum::<f64>() / c.len() as f64,
                )
            })
            .collect()
    };
    let (d, g) = (smooth(1), smooth(2));
    report::line_plot(
        &format!("{:?} GAN losses", cfg.preset),
        "step",
        &[
            Series {
                name: "discriminator",
                points: &d,
            },
            Series {
                name: "generator",
                points: &g,
            },
        ],
        &opts.out.join("losses.png"),
    )?;
    let window = &p.history[p.history.len().saturating_sub(100)..];
    let mean =
        |k: usize| window.iter().map(|h| h[k] as f64).sum::<f64>() / window.len().max(1) as f64;
    report::append_jsonl(
        &opts.out.join("metrics.jsonl"),
        &serde_json::json!({
            "epoch": p.epoch,
            "step": p.history.len(),
            "train_seconds": seconds,
            "d_loss": mean(1),
            "g_loss": mean(2),
            "d_real": mean(3),
            "d_fake": mean(4),
            "eval": scores,
        }),
    )
}

fn save(
    cfg: &RunConfig,
    opts: &Options,
    gan: &GanTrainer,
    p: &Progress,
    train_seconds: f64,
) -> Result<()> {
    let mut ck = Checkpoint::default();
    for t in gan.state()? {
        ck.tensors.insert(
            t.name,
            Tensor {
                shape: t.shape,
                data: t.data,
            },
        );
    }
    let flat: Vec<f32> = p.history.iter().flatten().copied().collect();
    ck.tensors.insert(
        "run.history".into(),
        Tensor {
            shape: vec![p.history.len(), 5],
            data: flat,
        },
    );
    let (seed, stream, word_pos) = gan.rng_state();
    let meta = [
        ("config", serde_json::to_string_pretty(cfg)?),
        ("epoch", p.epoch.to_string()),
        ("batch", p.batch.to_string()),
        ("train_seconds", train_seconds.to_string()),
        (
            "rng_seed",
            seed.iter().map(|b| format!("{b:02x}")).collect(),
        ),
        ("rng_stream", stream.to_string()),
        ("rng_word_pos", word_pos.to_string()),
    ];
    ck.metadata = meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    checkpoint::save(&opts.out, &ck)?;
    Ok(())
}

/// Reads a run's configuration from its checkpoint (for `--resume` without flags, and eval).
pub fn load_config(dir: &Path) -> Result<(RunConfig, Checkpoint)> {
    let ck = checkpoint::load(dir)?;
    let path = dir.join(checkpoint::TENSORS_FILE);
    let cfg: RunConfig = serde_json::from_str(ck.meta(&path, "config")?).with_context(|| {
        format!(
            "{}: the configuration in its metadata is not valid",
            path.display()
        )
    })?;
    Ok((cfg, ck))
}

/// The generator's tensors from a checkpoint, checked against the configuration's shapes.
pub fn generator_tensors(cfg: &RunConfig, ck: &Checkpoint, dir: &Path) -> Result<Vec<NamedTensor>> {
    tensors(&cfg.gan_config().generator_specs(), ck, dir)
}

/// Every state tensor (both models, optimiser moments, step counters) from a checkpoint.
pub fn state_tensors(cfg: &RunConfig, ck: &Checkpoint, dir: &Path) -> Result<Vec<NamedTensor>> {
    tensors(&cfg.gan_config().state_specs(), ck, dir)
}

pub(crate) fn tensors(
    specs: &[crate::model::ParamSpec],
    ck: &Checkpoint,
    dir: &Path,
) -> Result<Vec<NamedTensor>> {
    let path = dir.join(checkpoint::TENSORS_FILE);
    specs
        .iter()
        .map(|s| {
            let t = ck.tensor(&path, &s.name, &s.shape)?;
            Ok(NamedTensor {
                name: s.name.clone(),
                shape: t.shape.clone(),
                data: t.data.clone(),
            })
        })
        .collect()
}

fn start_or_resume(cfg: &RunConfig, opts: &Options, gan: &mut GanTrainer) -> Result<Progress> {
    let exists = opts.out.join(checkpoint::TENSORS_FILE).exists();
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
            batch: 0,
            train_seconds: 0.0,
            history: Vec::new(),
        });
    }
    if !exists {
        return Err(TrainError::NothingToResume {
            dir: opts.out.clone(),
            file: checkpoint::TENSORS_FILE,
        }
        .into());
    }
    let (saved, ck) = load_config(&opts.out)?;
    if let Some((field, checkpoint, requested)) = saved.resume_conflict(cfg) {
        return Err(TrainError::ConfigMismatch {
            dir: opts.out.clone(),
            field,
            checkpoint,
            requested,
        }
        .into());
    }
    gan.load_state(&state_tensors(cfg, &ck, &opts.out)?)?;
    let path = opts.out.join(checkpoint::TENSORS_FILE);
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
    Ok(Progress {
        epoch: num("epoch")? as u64,
        batch: num("batch")? as u64,
        train_seconds: num("train_seconds")?,
        history,
    })
}
