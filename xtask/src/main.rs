//! `cargo xtask`: the project's set-up and orchestration, so that a fresh machine needs only
//! Rust, Python's pip and apt to run everything.

mod bench;
mod board;
mod demo;
mod setup;
mod size;
mod util;
mod web;

use anyhow::Result;
use board::BoardCrate;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "mcugan set-up and orchestration")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring this machine to a working state (targets, QEMU, ONNX Runtime, MNIST). Idempotent.
    Setup {
        /// Also the CUDA build of ONNX Runtime with its NVIDIA libraries (1.35 GB from PyPI,
        /// 2.1 GB in .cache/onnxruntime-cuda), for `--device cuda`.
        #[arg(long)]
        cuda: bool,
    },
    /// Set up, then run every check: formatting, clippy, the workspace tests, firmware builds.
    Test {
        /// Also set up the CUDA libraries and test that they load (no GPU needed).
        #[arg(long)]
        cuda: bool,
    },
    /// The main job: train, export, build the firmware, boot it in QEMU and capture the screen.
    Demo(demo::DemoArgs),
    /// Benchmarks (criterion), each against its baseline in the same run.
    Bench {
        /// Which benchmark: train, engine or firmware (all when omitted).
        which: Option<String>,
        /// `cuda` runs the training step (ours and PyTorch's) on the GPU.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Flash and RAM of the firmware images against the boards' budgets.
    Size,
    /// Build the web page (the app in WebAssembly) into out/web/ and serve it on loopback.
    Web(web::WebArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Setup { cuda } => setup::run(cuda),
        Command::Test { cuda } => test(cuda),
        Command::Demo(args) => demo::run(args),
        Command::Bench { which, device } => bench::run(which.as_deref(), &device),
        Command::Size => size::run(),
        Command::Web(args) => web::run(args),
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent folder")
        .to_path_buf()
}

fn test(cuda: bool) -> Result<()> {
    let started = std::time::Instant::now();
    setup::run(cuda)?;
    let root = root();
    util::step("cargo fmt --check");
    util::cargo(&root, &["fmt", "--all", "--", "--check"])?;
    util::step("cargo clippy (warnings are errors)");
    util::cargo(
        &root,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // Type-checks the simulator window too (no SDL needed to check; linking it would).
    util::step("cargo clippy --features window (the simulator window)");
    util::cargo(
        &root,
        &[
            "clippy",
            "--quiet",
            "--features",
            "window",
            "--bin",
            "mcugan",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    for target in ["thumbv7m-none-eabi", "thumbv6m-none-eabi"] {
        util::step(&format!("firmware crate for {target}"));
        util::cargo(
            &root,
            &[
                "build",
                "--quiet",
                "-p",
                "firmware",
                "--target",
                target,
                "--release",
            ],
        )?;
    }
    for board in board::ALL {
        board.lint()?;
    }
    web::lint()?;
    size::run()?;
    // An xtask step, not a workspace test: it builds the page with the wasm toolchain and
    // serves it as `cargo xtask web` does, and needs Chromium and node from set-up.
    web::test()?;
    util::step("workspace tests");
    util::cargo(&root, &["test", "--workspace"])?;
    if cuda {
        // Ignored in the plain run: a clean clone has no CUDA set (2 GB) to load.
        util::step("the CUDA library set loads (cargo xtask setup --cuda's)");
        util::cargo(
            &root,
            &[
                "test",
                "--workspace",
                "--test",
                "cuda_libraries",
                "--",
                "--ignored",
            ],
        )?;
    }
    util::step(&format!(
        "all checks passed in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
