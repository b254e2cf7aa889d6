//! `mcugan eval`: scores a run's generator with the project's cached MNIST classifier.

use anyhow::{Result, bail};
use checkpoint::IMAGE_SIDE;
use clap::Args;
use export::board_samples::{Screen, board_samples, read_blob};
use firmware::format::Model;
use std::path::{Path, PathBuf};
use trainer::eval::{self, RealStats, SAMPLES, Scorer};
use trainer::{Device, GanConfig, GanTrainer};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The run folder written by `mcugan train`: scores its float generator (with --model,
    /// beside the blob's scores).
    #[arg(long, required_unless_present = "model")]
    checkpoint: Option<PathBuf>,
    /// A model blob (`mcugan export`'s model.bin): scores what the board shows, sampled by the
    /// firmware's own engine and noise on the board's seeds 0, 1, 2 …, in the screen's 16 greys.
    #[arg(long)]
    model: Option<PathBuf>,
    /// With --model: as a one-bit SSD1306 screen shows it (the app's ordered dithering, each
    /// pixel the share of its lit screen points), as on the Pico.
    #[arg(long, requires = "model")]
    mono: bool,
    /// MNIST folder (the classifier's training data and the reference test images) [default:
    /// data/mnist in the workspace, or MCUGAN_MNIST_DIR].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where the classifier and the float generator run: `cpu`, `cuda` (the CPU when CUDA
    /// cannot be used, with a message) or `cuda!` (refuses instead).
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// Samples to score (at least 2; the usual Fréchet distance uses 10,000).
    #[arg(long, default_value_t = SAMPLES)]
    samples: usize,
    /// Where to write the scores as JSON (default: eval.json in the run folder, or beside the
    /// model as <model>.eval.json).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Most samples an evaluation scores (their images and features are held in memory).
const MAX_SAMPLES: usize = 100_000;

/// The classifier and the real-data statistics, prepared once and reused at every evaluation.
pub struct Evaluation {
    scorer: Scorer,
    real: RealStats,
    samples: usize,
}

impl Evaluation {
    pub fn prepare(data: &Path, device: Device) -> Result<Self> {
        let (train, test) = eval::mnist(data)?;
        let cache = crate::workspace_path(
            checkpoint::workspace::CLASSIFIER_CACHE,
            "the classifier cache",
        )?;
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

    /// Scores a blob as `screen` shows it, on the board's seeds from 0.
    pub fn score_board(&mut self, model: &Model<'_>, screen: Screen) -> Result<eval::Scores> {
        let classes = (model.header.classes > 0).then_some(model.header.classes as usize);
        let mut sample = |start: usize, n: usize| board_samples(model, screen, start as u32, n);
        eval::score_samples(
            &mut sample,
            classes,
            &mut self.scorer,
            &self.real,
            self.samples,
        )
    }

    pub fn score_json(&mut self, gan: &mut GanTrainer) -> Result<serde_json::Value> {
        let s = self.score(gan)?;
        print!("{}", s.table());
        Ok(serde_json::to_value(s)?)
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    if !(2..=MAX_SAMPLES).contains(&args.samples) {
        bail!(
            "--samples {}: must be 2 (a covariance needs two) to {MAX_SAMPLES}",
            args.samples
        );
    }
    // Everything that can be refused is read before the classifier is prepared.
    let blob = args
        .model
        .as_deref()
        .map(|path| -> Result<(&Path, Vec<u8>)> {
            let bytes = read_blob(path)?;
            let header = Model::from_bytes(&bytes).expect("read_blob validated it").header;
            if (header.width as usize, header.height as usize) != (IMAGE_SIDE, IMAGE_SIDE) {
                bail!(
                    "{}: draws {}×{} images; the evaluation scores {IMAGE_SIDE}×{IMAGE_SIDE} digits",
                    path.display(),
                    header.width,
                    header.height,
                );
            }
            Ok((path, bytes))
        })
        .transpose()?;
    let run = args
        .checkpoint
        .as_deref()
        .map(checkpoint::Run::open)
        .transpose()?;
    let mut gan = match &run {
        Some(run) => {
            let mut gan = GanTrainer::new(GanConfig::from_run(&run.config), args.device)?;
            gan.load_state(&trainer::train::state_tensors(run)?)?;
            Some(gan)
        }
        None => None,
    };
    let mut eval = Evaluation::prepare(&crate::data_dir(args.data.as_deref())?, args.device)?;
    eval.samples = args.samples;
    let float = gan.as_mut().map(|g| eval.score(g)).transpose()?;
    if let Some(run) = &run {
        println!("{} ({:?} preset)", run.dir.display(), run.config.preset);
    }
    let (scores, json) = match &blob {
        Some((path, bytes)) => {
            let model = Model::from_bytes(bytes).expect("validated");
            let screen = if args.mono {
                Screen::Mono
            } else {
                Screen::Grey
            };
            let board = eval.score_board(&model, screen)?;
            let title = format!("board ({})", screen.name());
            println!(
                "{}: {} samples as the {} screen shows them",
                path.display(),
                board.samples,
                screen.name()
            );
            match &float {
                Some(f) => print!("{}", board.beside(&title, f, "float")),
                None => print!("{}", board.table()),
            }
            let mut json = serde_json::to_value(&board)?;
            json["model"] = serde_json::json!(path.display().to_string());
            json["screen"] = serde_json::json!(screen.name());
            json["float"] = serde_json::to_value(&float)?;
            (
                json,
                args.json
                    .clone()
                    .unwrap_or_else(|| path.with_extension("eval.json")),
            )
        }
        None => {
            let f = float.expect("--checkpoint is required without --model");
            print!("{}", f.table());
            let dir = args.checkpoint.as_ref().expect("required without --model");
            (
                serde_json::to_value(&f)?,
                args.json.clone().unwrap_or_else(|| dir.join("eval.json")),
            )
        }
    };
    checkpoint::write_atomic(&json, serde_json::to_string_pretty(&scores)?.as_bytes())?;
    println!("scores written to {}", json.display());
    Ok(())
}
