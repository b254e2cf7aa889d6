//! `mcugan eval`: scores a run's generator with the project's cached MNIST classifier.

use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};
use trainer::eval::{self, RealStats, SAMPLES, Scorer};
use trainer::{Device, GanConfig, GanTrainer};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The run folder written by `mcugan train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// MNIST folder (the classifier's training data and the reference test images).
    #[arg(long, default_value_os_t = crate::workspace_path("data/mnist"))]
    data: PathBuf,
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// Samples to score.
    #[arg(long, default_value_t = SAMPLES)]
    samples: usize,
    /// Where to write the scores as JSON (default: eval.json in the run folder).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The classifier and the real-data statistics, prepared once and reused at every evaluation.
pub struct Evaluation {
    scorer: Scorer,
    real: RealStats,
    samples: usize,
}

impl Evaluation {
    pub fn prepare(data: &Path, device: Device) -> Result<Self> {
        let (train, test) = eval::mnist(data)?;
        let cache = crate::workspace_path(".cache/classifier");
        let mut scorer = eval::classifier(&cache, &train, &test, device, eval::MIN_ACCURACY, true)?;
        let real = eval::real_stats(&mut scorer, &train, &test)?;
        Ok(Evaluation {
            scorer,
            real,
            samples: SAMPLES,
        })
    }

    pub fn score(&mut self, gan: &mut GanTrainer) -> Result<eval::Scores> {
        eval::score(gan, &mut self.scorer, &self.real, self.samples, 1234)
    }

    pub fn score_json(&mut self, gan: &mut GanTrainer) -> Result<serde_json::Value> {
        let s = self.score(gan)?;
        print!("{}", s.table());
        Ok(serde_json::to_value(s)?)
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    let run = checkpoint::Run::open(&args.checkpoint)?;
    let cfg = &run.config;
    let mut gan = GanTrainer::new(GanConfig::from_run(cfg), args.device)?;
    gan.load_state(&trainer::train::state_tensors(&run)?)?;
    let mut eval = Evaluation::prepare(&args.data, args.device)?;
    eval.samples = args.samples;
    let scores = eval.score(&mut gan)?;
    println!("{} ({:?} preset)", args.checkpoint.display(), cfg.preset);
    print!("{}", scores.table());
    let json = args
        .json
        .unwrap_or_else(|| args.checkpoint.join("eval.json"));
    checkpoint::write_atomic(&json, serde_json::to_string_pretty(&scores)?.as_bytes())?;
    println!("scores written to {}", json.display());
    Ok(())
}
