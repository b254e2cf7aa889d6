//! The training loop people run: epochs over seeded batches, a progress bar, sample grids and
//! loss plots (`reports`), checkpoints that resume exactly (`state`), a clean stop on Ctrl-C,
//! and a hard stop with the last good checkpoint kept when the losses go to NaN or explode.

mod reports;
mod state;

pub use state::state_tensors;

use crate::data::{Dataset, EpochOrder, PIXELS, Split, fill_batch};
use crate::gan::{GanConfig, GanTrainer, MemoryEstimate, generator_onnx};
use crate::runtime::Device;
use anyhow::{Context, Result, bail};
use checkpoint::RunConfig;
use reports::{FixedNoise, progress_bar, update_bar, write_reports};
use state::{save, start_or_resume};
use std::path::PathBuf;
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
        "training diverged at step {step}: D loss {d_loss}, G loss {g_loss}; stopped, {}",
        if *.checkpoint_kept {
            format!("the last good checkpoint in {} is kept", .dir.display())
        } else {
            "before its first checkpoint, so there is none (lower the learning rates)".to_string()
        }
    )]
    Diverged {
        step: u64,
        d_loss: f32,
        g_loss: f32,
        dir: PathBuf,
        /// Whether `dir` holds a checkpoint from before the divergence.
        checkpoint_kept: bool,
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
    #[error(
        "this configuration needs about {} to train ({} of parameters, Adam state and copies, \
         {} of gradients, {} of activations for a batch of {batch}), but this machine has {} \
         available ({} in all): use smaller --g-widths, --d-widths or --batch",
        gib(.estimate.total()),
        gib(.estimate.state),
        gib(.estimate.gradients),
        gib(.estimate.activations),
        gib(*.available),
        gib(*.total)
    )]
    TooLarge {
        estimate: MemoryEstimate,
        batch: usize,
        available: u64,
        total: u64,
    },
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Memory this process may still take: the machine's available memory, or what is left under
/// the control group's limit when that is lower; and the total it is measured against. None
/// where the system cannot say.
pub fn machine_memory() -> Option<(u64, u64)> {
    let mut sys = sysinfo::System::new().ok()?;
    sys.refresh_memory();
    let (mut available, mut total) = (sys.available_memory(), sys.total_memory());
    if let Some(limits) = sys.cgroup_limits() {
        available = available.min(limits.free_memory);
        total = total.min(limits.total_memory);
    }
    (total > 0).then_some((available, total))
}

/// What a run of `cfg` needs in memory, at its largest batch.
pub fn memory_estimate(cfg: &RunConfig) -> MemoryEstimate {
    GanConfig {
        batch: cfg.largest_batch(),
        ..GanConfig::from_run(cfg)
    }
    .memory_estimate()
}

/// Refuses a configuration whose [`memory_estimate`] exceeds what the machine has available
/// (where the system says). On CUDA the tensors live in device memory, which the runtime's own
/// errors report, so only CPU runs are checked.
pub fn check_memory(cfg: &RunConfig, device: Device) -> Result<(), TrainError> {
    if device != Device::Cpu {
        return Ok(());
    }
    let estimate = memory_estimate(cfg);
    let Some((available, total)) = machine_memory() else {
        return Ok(());
    };
    if estimate.total() > available {
        return Err(TrainError::TooLarge {
            estimate,
            batch: cfg.largest_batch(),
            available,
            total,
        });
    }
    Ok(())
}

/// Where a run stands: what a checkpoint saves besides the tensors.
struct Progress {
    epoch: u64,
    /// Images of this epoch's order already trained on (batches may change size mid-epoch).
    offset: u64,
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
    check_memory(cfg, opts.device)?;
    let mut data = Dataset::load_dir(&opts.data_dir, Split::Train)?;
    if let Some(n) = cfg.subset {
        data = data.take(n);
    }
    if data.len() < cfg.largest_batch() {
        bail!(
            "{} training images are fewer than one batch of {}",
            data.len(),
            cfg.largest_batch()
        );
    }
    let images = data.len() as u64;
    let mut gan = GanTrainer::new(GanConfig::from_run(cfg), opts.device)?;
    let mut progress = start_or_resume(cfg, opts, &mut gan)?;
    // Only now, with every input checked, does the run folder appear.
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let fixed = FixedNoise::new(cfg);

    let bar = progress_bar(cfg, opts, images, &progress);
    let started = Instant::now();
    let seconds = |p: &Progress| p.train_seconds + started.elapsed().as_secs_f64();
    // Images this process trained on, for its rate.
    let mut seen = 0u64;
    let largest = cfg.largest_batch();
    let (mut pixels, mut labels) = (vec![0f32; largest * PIXELS], vec![0u8; largest]);
    // The last in-loop evaluation: (epoch, scores).
    let mut evaluated: Option<(u64, serde_json::Value)> = None;
    let stop = loop {
        if cfg.epochs.is_some_and(|e| progress.epoch >= e) {
            break Stop::Epochs;
        }
        let order = if cfg.class_balanced {
            EpochOrder::balanced(data.labels(), cfg.seed, progress.epoch)
        } else {
            EpochOrder::new(data.len(), cfg.seed, progress.epoch)
        };
        let mut stopped = None;
        loop {
            let fraction = run_fraction(cfg, &progress, images, seconds(&progress));
            let b = cfg.batch_at(fraction);
            let Some(idx) = order.batch_from(progress.offset as usize, b) else {
                break;
            };
            if opts.stop.load(Ordering::SeqCst) {
                stopped = Some(Stop::Interrupted);
                break;
            }
            if cfg
                .time_budget_s
                .is_some_and(|budget| seconds(&progress) >= budget)
            {
                stopped = Some(Stop::Budget);
                break;
            }
            let (pixels, labels) = (&mut pixels[..b * PIXELS], &mut labels[..b]);
            fill_batch(&data, idx, pixels, labels);
            gan.set_lr_scale(cfg.lr_scale(fraction) as f32)?;
            let l = gan.step(pixels, labels)?;
            let step = progress.history.len() as u64 + 1;
            let bad = |v: f32| !v.is_finite() || v.abs() > EXPLODED;
            if bad(l.d_loss) || bad(l.g_loss) {
                bar.abandon();
                return Err(TrainError::Diverged {
                    step,
                    d_loss: l.d_loss,
                    g_loss: l.g_loss,
                    dir: opts.out.clone(),
                    checkpoint_kept: opts.out.join(checkpoint::TENSORS_FILE).exists(),
                }
                .into());
            }
            progress
                .history
                .push([step as f32, l.d_loss, l.g_loss, l.d_real, l.d_fake]);
            progress.offset += b as u64;
            seen += b as u64;
            if step.is_multiple_of(10) {
                update_bar(
                    &bar,
                    cfg,
                    &progress,
                    images,
                    seconds(&progress),
                    seen as f64 / started.elapsed().as_secs_f64(),
                );
            }
        }
        if let Some(s) = stopped {
            break s;
        }
        progress.epoch += 1;
        progress.offset = 0;
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
    let already = evaluated.filter(|(epoch, _)| *epoch == progress.epoch && progress.offset == 0);
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
    checkpoint::write_atomic(&opts.out.join(checkpoint::run::GENERATOR_ONNX), &onnx)?;
    bar.finish_and_clear();
    Ok(Summary {
        stop,
        steps: progress.history.len() as u64,
        epoch: progress.epoch,
        train_seconds,
        images_per_second: seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
        history: progress.history,
    })
}

/// How far the run is toward its end, 0 to 1: the larger of its share of the epochs (by the
/// images trained on, whatever the batch) and of the time budget (0 when it has neither).
fn run_fraction(cfg: &RunConfig, p: &Progress, images: u64, seconds: f64) -> f64 {
    let by_epochs = cfg
        .epochs
        .map(|e| (p.epoch as f64 + p.offset as f64 / images.max(1) as f64) / e.max(1) as f64);
    let by_time = cfg.time_budget_s.map(|b| seconds / b.max(1e-9));
    by_epochs.into_iter().chain(by_time).fold(0.0, f64::max)
}
