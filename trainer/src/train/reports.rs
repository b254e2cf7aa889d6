//! What a run shows while it trains and leaves beside its checkpoint: the progress bar, and at
//! each sampling point the sample sheet (fixed noise, one row per class), the loss plot and a
//! line of `metrics.jsonl`.

use super::{Options, Progress};
use crate::gan::GanTrainer;
use crate::report::{self, Series};
use anyhow::Result;
use checkpoint::RunConfig;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
pub(super) fn progress_bar(
    cfg: &RunConfig,
    opts: &Options,
    images: u64,
    p: &Progress,
) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    // With an epoch count the bar counts images (the batch may grow); with only a time budget
    // it counts seconds.
    let (len, pos) = match (cfg.epochs, cfg.time_budget_s) {
        (Some(e), _) => (e * images, p.epoch * images + p.offset),
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

pub(super) fn update_bar(
    bar: &ProgressBar,
    cfg: &RunConfig,
    p: &Progress,
    images: u64,
    seconds: f64,
    images_per_s: f64,
) {
    let window = &p.history[p.history.len().saturating_sub(50)..];
    let mean = |k: usize| window.iter().map(|h| h[k]).sum::<f32>() / window.len().max(1) as f32;
    if cfg.epochs.is_some() {
        bar.set_position(p.epoch * images + p.offset);
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
pub(super) struct FixedNoise {
    z: Vec<f32>,
    labels: Vec<u8>,
    cols: usize,
}

impl FixedNoise {
    pub(super) fn new(cfg: &RunConfig) -> Self {
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

pub(super) fn write_reports(
    cfg: &RunConfig,
    opts: &Options,
    gan: &mut GanTrainer,
    fixed: &FixedNoise,
    p: &Progress,
    seconds: f64,
    scores: Option<serde_json::Value>,
) -> Result<()> {
    let images = gan.generate(&fixed.z, &fixed.labels)?;
    checkpoint::sheet::sample_grid(&images, fixed.cols, 2, &opts.out.join("samples.png"))?;
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
