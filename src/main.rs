//! `mcugan`: the command-line tool. Each subcommand is a thin layer over a library crate
//! (`trainer`, `export`, `firmware`); later work adds `train`, `export`, `eval` and `sim`.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
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
    /// Summarise an MNIST-format data folder (counts per class), validating every file.
    Data {
        /// Folder with the four IDX files (raw or gzipped).
        #[arg(long, default_value = "data/mnist")]
        dir: PathBuf,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Data { dir } => data_summary(&dir),
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
