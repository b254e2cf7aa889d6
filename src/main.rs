//! `mcugan`: the command-line tool. Each subcommand is a thin layer over a library crate
//! (`trainer`, `export`, `firmware`).

mod eval;
mod export;
mod sim;
mod train;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use firmware::frame::{Frame, MonoFrame};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "mcugan",
    version,
    about = "A generative model on a microcontroller"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a GAN on MNIST (default preset: the conditional generator sized for the LM3S6965).
    Train(Box<train::TrainArgs>),
    /// Score a trained generator with the project's MNIST classifier (FID, IS, class accuracy).
    Eval(eval::EvalArgs),
    /// Quantize a trained generator to the firmware's integer model and verify it against float.
    Export(export::ExportArgs),
    /// Summarise an MNIST-format data folder (counts per class), validating every file.
    Data {
        /// Folder with the four IDX files (raw or gzipped) [default: data/mnist in the
        /// workspace, or MCUGAN_MNIST_DIR].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run the firmware's app on the host: a window (feature `window`), or headless to a PNG.
    Sim {
        /// Model blob written by `mcugan export` (default: the committed
        /// `models/lm3s6965/model.bin`, which the board embeds too).
        #[arg(long, conflicts_with = "random_model")]
        model: Option<PathBuf>,
        /// Use a random model of the board preset's shape built from this seed.
        #[arg(long, value_name = "SEED")]
        random_model: Option<u64>,
        /// No window: apply --press and write the screen to --out.
        #[arg(long)]
        headless: bool,
        /// Buttons to press, e.g. "right right select up" (up, down, left, right, select).
        #[arg(long, default_value = "")]
        press: String,
        /// PNG of the screen (headless): 128×64 grey, level n as n·17 (--mono: 0 or 255), times
        /// --scale.
        #[arg(long, default_value = "screen.png")]
        out: PathBuf,
        /// Pixel repetition of the PNG, 1 to 16 (QEMU's OLED screendump is 4).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
        scale: u32,
        /// The one-bit screen of the SSD1306 boards (Pico): the digit in ordered dithering.
        #[arg(long)]
        mono: bool,
        /// First seed of the reproducible sequence (the n-th SELECT uses seed + n). The
        /// window without it mixes seeds with the time between presses.
        #[arg(long)]
        seed: Option<u32>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Train(args) => train::run(*args),
        Command::Eval(args) => eval::run(args),
        Command::Export(args) => export::run(args),
        Command::Data { dir } => data_summary(&data_dir(dir.as_deref())?),
        Command::Sim {
            model,
            random_model,
            headless,
            press,
            out,
            scale,
            mono,
            seed,
        } => {
            let source = match (model, random_model) {
                (Some(path), _) => sim::Source::File(path),
                (None, Some(seed)) => sim::Source::Random(seed),
                (None, None) => sim::Source::File(
                    workspace_path(
                        checkpoint::workspace::DEFAULT_MODEL_DIR,
                        "the default model (or give --model)",
                    )?
                    .join("model.bin"),
                ),
            };
            let blob = sim::load(&source)?;
            if headless {
                let presses = sim::parse_presses(&press)?;
                let seed = seed.unwrap_or(0);
                let app = sim::run(&blob, seed, &presses);
                if mono {
                    sim::write_png(&sim::screen::<MonoFrame, _>(&app), scale, &out)?;
                } else {
                    sim::write_png(&sim::screen::<Frame, _>(&app), scale, &out)?;
                }
                println!("{}", sim::describe(&app));
                println!("wrote {}", out.display());
                // The screen shows the refusal, as the board would; the exit status says it too.
                if let Err(e) = app.model() {
                    anyhow::bail!(
                        "the model was refused: {e} (the error screen is in {})",
                        out.display()
                    );
                }
                Ok(())
            } else {
                sim::window(&blob, seed, mono)
            }
        }
    }
}

fn data_summary(dir: &std::path::Path) -> Result<()> {
    use trainer::data::{Dataset, Split};
    for split in [Split::Train, Split::Test] {
        let data =
            Dataset::load_dir(dir, split).with_context(|| format!("loading {split:?} split"))?;
        println!(
            "{split:?}: {} images; per class {:?}",
            data.len(),
            data.class_counts()
        );
    }
    Ok(())
}

/// A path inside the workspace found at run time (see `checkpoint::workspace`): the default
/// home of the caches and the committed models that `cargo xtask setup` and the repository
/// provide. `needed` names the use, for the error when no workspace is found.
pub fn workspace_path(rel: &str, needed: &str) -> Result<PathBuf> {
    Ok(checkpoint::workspace::path(rel, needed)?)
}

/// `--data`, or the default MNIST folder when the flag is absent.
pub fn data_dir(flag: Option<&std::path::Path>) -> Result<PathBuf> {
    match flag {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Ok(trainer::data::default_mnist_dir()?),
    }
}
