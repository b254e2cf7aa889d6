//! `mcugan train`: a preset, overridden by flags, handed to the trainer's loop.

use anyhow::{Context, Result};
use checkpoint::{Conditioning, Preset, RunConfig};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use trainer::Device;
use trainer::train::{self, Options, Stop};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Starting point: `lm3s6965` (conditional, fits the board), `pico` (the seed's generator
    /// size with the lm3s6965 recipe, for the Pico's 2 MB) or `seed` (the original recipe).
    #[arg(long, default_value = "lm3s6965")]
    preset: Preset,
    /// Run folder: checkpoint, config.json, samples.png, losses.png, metrics.jsonl, generator.onnx.
    #[arg(long, default_value = "runs/lm3s6965")]
    out: PathBuf,
    /// MNIST-format folder (raw or gzipped IDX; Fashion-MNIST works too) [default: data/mnist
    /// in the workspace, or MCUGAN_MNIST_DIR].
    #[arg(long)]
    data: Option<PathBuf>,
    /// `cpu`, `cuda` (the libraries of `cargo xtask setup --cuda`; falls back to the CPU with
    /// a message when CUDA cannot be used) or `cuda!` (refuses instead, for scripts).
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// Continue the run in --out from its checkpoint (flags that change the model are refused).
    #[arg(long)]
    resume: bool,
    /// Noise dimensions the generator draws from (the board draws the same count).
    #[arg(long)]
    z_dim: Option<usize>,
    /// Condition on the digit class (one-hot joined to the noise; D as --conditioning says).
    #[arg(long)]
    conditional: Option<bool>,
    /// How D learns the class: `projection` (D's logit gains ⟨class embedding, features⟩),
    /// `auxiliary` (AC-GAN: D classifies real images and rewards G for samples of the
    /// intended class) or `concat` (one-hot joined to D's input).
    #[arg(long)]
    conditioning: Option<Conditioning>,
    /// Weight of the auxiliary classification loss.
    #[arg(long, allow_negative_numbers = true)]
    aux_weight: Option<f64>,
    /// D's target for real images (e.g. 0.9 for one-sided label smoothing; 1 for none).
    #[arg(long, allow_negative_numbers = true)]
    real_target: Option<f64>,
    /// Batches that hold each class in its share of the data (`false`: a plain shuffle).
    #[arg(long)]
    class_balanced: Option<bool>,
    /// Generator hidden widths, comma-separated (e.g. 32,64,128,192).
    #[arg(long, value_delimiter = ',')]
    g_widths: Option<Vec<usize>>,
    /// Discriminator hidden widths, comma-separated.
    #[arg(long, value_delimiter = ',')]
    d_widths: Option<Vec<usize>>,
    /// Learning rate of both networks (see --lr-g, --lr-d).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// The generator's learning rate (Adam), in (0, 1].
    #[arg(long, allow_negative_numbers = true)]
    lr_g: Option<f64>,
    /// The discriminator's learning rate (Adam), in (0, 1].
    #[arg(long, allow_negative_numbers = true)]
    lr_d: Option<f64>,
    /// Adam's first-moment decay for both models, in [0, 1).
    #[arg(long, allow_negative_numbers = true)]
    beta1: Option<f64>,
    /// Adam's second-moment decay for both models, in [0, 1).
    #[arg(long, allow_negative_numbers = true)]
    beta2: Option<f64>,
    /// Decay of the moving average of the generator's weights that samples, evaluation and
    /// export use (e.g. 0.999; 0 for none, the trained weights).
    #[arg(long, allow_negative_numbers = true)]
    ema: Option<f64>,
    /// From this fraction of the run on (0 to 1), both learning rates fall linearly to 1% at
    /// its end; `none` keeps them constant.
    #[arg(long, value_parser = parse_decay)]
    lr_decay: Option<Decay>,
    /// Real images per step (and as many generated), at least 2.
    #[arg(long)]
    batch: Option<usize>,
    /// From --late-batch-from of the run on, batches of this size (`none`: --batch
    /// throughout).
    #[arg(long, value_parser = parse_late_batch)]
    late_batch: Option<LateBatch>,
    /// The fraction of the run (0 to 1, as for --lr-decay) where --late-batch takes over.
    #[arg(long, allow_negative_numbers = true)]
    late_batch_from: Option<f64>,
    /// Stop after this many epochs.
    #[arg(long)]
    epochs: Option<u64>,
    /// Stop after this many minutes of training.
    #[arg(long, allow_negative_numbers = true)]
    minutes: Option<f64>,
    /// Seeds the initial weights, the data order and the noise: the same seed, the same run.
    #[arg(long)]
    seed: Option<u64>,
    /// Train on the first N images only.
    #[arg(long)]
    subset: Option<usize>,
    /// Samples, loss plot and metrics every N epochs.
    #[arg(long)]
    sample_every: Option<u64>,
    /// Classifier evaluation every N epochs (0: only at the end).
    #[arg(long)]
    eval_every: Option<u64>,
    /// Skip the classifier-based evaluation.
    #[arg(long)]
    no_eval: bool,
}

/// `--lr-decay`'s value: a start fraction, or none.
#[derive(Clone, Copy, Debug)]
struct Decay(Option<f64>);

fn parse_decay(s: &str) -> Result<Decay, String> {
    if s == "none" {
        return Ok(Decay(None));
    }
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(Decay(Some(v))),
        _ => Err(format!(
            "`{s}`: expected a fraction of the run in [0, 1) or `none`"
        )),
    }
}

/// `--late-batch`'s value: a batch size, or none.
#[derive(Clone, Copy, Debug)]
struct LateBatch(Option<usize>);

fn parse_late_batch(s: &str) -> Result<LateBatch, String> {
    if s == "none" {
        return Ok(LateBatch(None));
    }
    s.parse::<usize>()
        .map(|b| LateBatch(Some(b)))
        .map_err(|_| format!("`{s}`: expected a batch size or `none`"))
}

impl TrainArgs {
    /// The validator names the configuration's fields; where the value came from `--lr` (both
    /// rates), say `--lr`, the flag the user typed.
    fn as_typed(&self, message: &str) -> String {
        for (field, own) in [("--lr-g ", self.lr_g), ("--lr-d ", self.lr_d)] {
            if own.is_none() && self.lr.is_some() && message.starts_with(field) {
                return message.replacen(field.trim_end(), "--lr", 1);
            }
        }
        message.to_string()
    }

    /// The preset (or the checkpoint's configuration, when resuming) with the flags applied.
    fn config(&self) -> Result<RunConfig> {
        let mut cfg = if self.resume && self.out.join(checkpoint::TENSORS_FILE).exists() {
            checkpoint::Run::open(&self.out)?.config
        } else {
            RunConfig::preset(self.preset)
        };
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => {$(
                if let Some(v) = &self.$flag {
                    cfg.$field = v.clone();
                }
            )*};
        }
        set!(z_dim => z_dim, conditional => conditional, conditioning => conditioning,
             aux_weight => aux_weight, real_target => real_target, g_widths => g_widths, d_widths => d_widths,
             lr => lr_g, lr => lr_d, lr_g => lr_g, lr_d => lr_d, beta1 => beta1, beta2 => beta2, ema => ema,
             batch => batch, class_balanced => class_balanced, seed => seed, sample_every => sample_every, eval_every => eval_every);
        if let Some(Decay(d)) = self.lr_decay {
            cfg.lr_decay = d;
        }
        if let Some(LateBatch(b)) = self.late_batch {
            cfg.late_batch = b;
        }
        if let Some(f) = self.late_batch_from {
            cfg.late_batch_from = f;
        }
        if self.subset.is_some() {
            cfg.subset = self.subset;
        }
        if self.epochs.is_some() || self.minutes.is_some() {
            cfg.epochs = self.epochs;
            cfg.time_budget_s = self.minutes.map(|m| m * 60.0);
        }
        Ok(cfg)
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    let cfg = args.config()?;
    cfg.validate()
        .map_err(|m| anyhow::Error::msg(args.as_typed(&m)))?;
    let data = crate::data_dir(args.data.as_deref())?;
    // Before the classifier is prepared (a minute when not cached), not only in the loop.
    train::check_memory(&cfg, args.device)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        eprintln!("\nstopping after this step; writing a checkpoint (Ctrl-C again to abort)");
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    let opts = Options {
        out: args.out.clone(),
        data_dir: data.clone(),
        device: args.device,
        resume: args.resume,
        progress: true,
        stop,
    };
    println!(
        "training {:?}: z {} {} G {:?} ({} weights) D {:?}, real target {}, lr G {} D {}{}, betas ({}, {}), weight average {}, batch {}{}, {}; about {:.2} GiB of memory",
        cfg.preset,
        cfg.z_dim,
        match (cfg.conditional, cfg.conditioning) {
            (false, _) => "unconditional".to_string(),
            (true, Conditioning::Concat) => "conditional (class joined to D's input)".to_string(),
            (true, Conditioning::Projection) =>
                "conditional (projection discriminator)".to_string(),
            (true, Conditioning::Auxiliary) =>
                format!("conditional (AC-GAN, auxiliary weight {})", cfg.aux_weight),
        },
        cfg.g_widths,
        cfg.generator_weights(),
        cfg.d_widths,
        cfg.real_target,
        cfg.lr_g,
        cfg.lr_d,
        match cfg.lr_decay {
            Some(d) => format!(" (falling from {:.0}% of the run)", d * 100.0),
            None => String::new(),
        },
        cfg.beta1,
        cfg.beta2,
        if cfg.ema > 0.0 {
            cfg.ema.to_string()
        } else {
            "none".into()
        },
        match cfg.late_batch {
            Some(b) => format!(
                "{}, {b} from {:.0}% of the run",
                cfg.batch,
                cfg.late_batch_from * 100.0
            ),
            None => cfg.batch.to_string(),
        },
        if cfg.class_balanced {
            " (class-balanced)"
        } else {
            ""
        },
        match (cfg.epochs, cfg.time_budget_s) {
            (Some(e), Some(b)) => format!("{e} epochs or {:.1} min", b / 60.0),
            (Some(e), None) => format!("{e} epochs"),
            (None, Some(b)) => format!("{:.1} min", b / 60.0),
            (None, None) => "until stopped".into(),
        },
        train::memory_estimate(&cfg).total() as f64 / (1u64 << 30) as f64
    );
    let summary = if args.no_eval {
        train::train(&cfg, &opts, None)?
    } else {
        let mut eval = crate::eval::Evaluation::prepare(&data, args.device)?;
        let mut f = |gan: &mut trainer::GanTrainer| eval.score_json(gan);
        train::train(&cfg, &opts, Some(&mut f))?
    };
    let last = summary.history.last().copied().unwrap_or_default();
    println!(
        "{} after {} steps ({} epochs, {:.0} s, {:.0} images/s); last losses D {:.3} G {:.3}",
        match summary.stop {
            Stop::Epochs => "done",
            Stop::Budget => "time budget reached",
            Stop::Interrupted => "interrupted; resume with --resume",
        },
        summary.steps,
        summary.epoch,
        summary.train_seconds,
        summary.images_per_second,
        last[1],
        last[2],
    );
    println!(
        "results in {}: samples.png, losses.png, metrics.jsonl, checkpoint.safetensors, generator.onnx",
        args.out.display()
    );
    Ok(())
}
