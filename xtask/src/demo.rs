//! `cargo xtask demo`, the README's main job: train the default preset, export it, build the
//! LM3S6965 firmware around it, boot it in QEMU, ask for each digit and keep what the screen
//! shows. Everything lands in `out/` (the previous demo's results are replaced).

use anyhow::{Context, Result, bail};
use harness::board::{Variant, elf_for};
use harness::demo::{capture_digits, contact_sheet};
use harness::qemu::{BOARD_HZ, INSTRUCTIONS_PER_TICK, Options};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::board;
use crate::size::Footprint;
use crate::util;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Minutes of training on the CPU (the default preset reaches legible digits in 3).
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// Skip training and export: put the committed default model on the board.
    #[arg(long, conflicts_with = "onnx")]
    committed: bool,
    /// Skip training: export this generator trained elsewhere (`mcugan export --onnx`) and
    /// put it on the board.
    #[arg(long, value_name = "GENERATOR.onnx")]
    onnx: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda!` for the training stage (`mcugan train --device`); `cuda` and
    /// `cuda!` set up the CUDA libraries first (`cargo xtask setup --cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// One stage's name and wall time.
struct Stages(Vec<(&'static str, Duration)>);

impl Stages {
    fn time<T>(&mut self, name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        util::step(&format!("demo: {name}"));
        let started = Instant::now();
        let value = f().with_context(|| format!("demo stage `{name}` failed"))?;
        self.0.push((name, started.elapsed()));
        Ok(value)
    }
}

pub fn run(args: DemoArgs) -> Result<()> {
    let root = crate::root();
    let out = root.join("out");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut stages = Stages(Vec::new());
    let cuda = crate::setup::wants_cuda(&args.device);
    stages.time("set-up", || crate::setup::run(cuda))?;
    // Built in the open: on a fresh machine this takes minutes, with cargo's progress shown.
    let tool = stages.time("build the mcugan tool (release)", || build_mcugan(&root))?;

    let (model, report) = if args.committed {
        let dir = root.join(checkpoint::workspace::DEFAULT_MODEL_DIR);
        for name in [
            "model.bin",
            "export-report.json",
            "float-vs-fixed.png",
            "samples.png",
            "losses.png",
            "eval.json",
        ] {
            std::fs::copy(dir.join(name), out.join(name))
                .with_context(|| format!("cannot copy {}", dir.join(name).display()))?;
        }
        (out.join("model.bin"), out.join("export-report.json"))
    } else if let Some(onnx) = &args.onnx {
        let model = out.join("model.bin");
        stages.time(
            "export the ONNX generator (checked against it in tract)",
            || {
                mcugan(
                    &tool,
                    &["export", "--onnx", path(onnx)?, "--out", path(&model)?],
                )
            },
        )?;
        (model, out.join("export-report.json"))
    } else {
        let run = out.join("run");
        if run.exists() {
            std::fs::remove_dir_all(&run)
                .with_context(|| format!("cannot clear the previous demo's {}", run.display()))?;
        }
        let minutes = args.minutes.to_string();
        stages.time("train (lm3s6965 preset)", || {
            mcugan(
                &tool,
                &[
                    "train",
                    "--out",
                    path(&run)?,
                    "--minutes",
                    &minutes,
                    "--device",
                    &args.device,
                ],
            )
        })?;
        let model = out.join("model.bin");
        stages.time("export (checked against float)", || {
            mcugan(
                &tool,
                &[
                    "export",
                    "--checkpoint",
                    path(&run)?,
                    "--out",
                    path(&model)?,
                ],
            )
        })?;
        for name in ["samples.png", "losses.png", "eval.json"] {
            if run.join(name).exists() {
                std::fs::copy(run.join(name), out.join(name))?;
            }
        }
        (model, out.join("export-report.json"))
    };

    let elf = stages.time("build the LM3S6965 firmware", || {
        elf_for(&Variant {
            model: Some(model.clone()),
            features: vec![],
        })
    })?;
    let footprint = Footprint::of_elf(&elf, &board::LM3S6965)?;
    for line in footprint.check(&board::LM3S6965)? {
        println!("    {line}");
    }

    let captures = stages.time("boot in QEMU, 4 SELECTs for each digit 0-9", || {
        let options = Options {
            icount_shift: Some(0),
            timeout: Duration::from_secs(120),
        };
        let (_qemu, captures) = capture_digits(&elf, options, SAMPLES_PER_DIGIT)?;
        Ok(captures)
    })?;
    let sheet = out.join("board.png");
    contact_sheet(&captures, SAMPLES_PER_DIGIT, 2, &sheet)?;

    // What the board shows, scored: the blob's own evaluation (with the float model's beside
    // it when this demo trained one).
    let board_eval = out.join("board-eval.json");
    stages.time("evaluate the model as the board shows it", || {
        let mut a = vec![
            "eval",
            "--model",
            path(&model)?,
            "--json",
            path(&board_eval)?,
        ];
        let run = out.join("run");
        if !args.committed && args.onnx.is_none() {
            a.extend(["--checkpoint", path(&run)?]);
        }
        mcugan(&tool, &a)
    })?;

    let ticks: u64 = captures.iter().map(|c| c.gen_ticks).sum::<u64>() / captures.len() as u64;
    let macs = captures[0].macs;
    let instructions = ticks * INSTRUCTIONS_PER_TICK;
    let read = |p: &Path| -> Value {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null)
    };
    let summary = json!({
        "model": model.display().to_string(),
        "stages_s": stages.0.iter().map(|(n, d)| json!({"stage": n, "seconds": d.as_secs_f64()})).collect::<Vec<_>>(),
        "flash_bytes": footprint.flash,
        "ram_bytes": footprint.ram,
        "model_bytes": footprint.model,
        "instructions_per_digit": instructions,
        "macs_per_digit": macs,
        "instructions_per_mac": instructions as f64 / macs as f64,
        "ms_per_digit_at_50mhz": instructions as f64 / BOARD_HZ * 1e3,
        "board_quality": read(&board_eval),
        "float_quality": read(&out.join("eval.json")),
        "export": read(&report),
    });
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;

    println!();
    for (name, d) in &stages.0 {
        println!("    {name:<42} {:>7.1} s", d.as_secs_f64());
    }
    println!(
        "    flash {:.1} KiB (model {:.1} KiB), RAM {:.1} KiB",
        footprint.flash as f64 / 1024.0,
        footprint.model as f64 / 1024.0,
        footprint.ram as f64 / 1024.0
    );
    println!(
        "    {instructions} instructions per digit, {:.2} per MAC, ~{:.1} ms per digit at 50 MHz",
        instructions as f64 / macs as f64,
        instructions as f64 / BOARD_HZ * 1e3
    );
    util::step(&format!(
        "demo done: the board's screens ({SAMPLES_PER_DIGIT} per digit) are in {}, with \
         samples.png, losses.png, float-vs-fixed.png, export-report.json, board-eval.json and \
         summary.json beside it",
        sheet.display()
    ));
    Ok(())
}

/// Samples of each digit the board is asked for (RIGHT, then SELECT this many times).
const SAMPLES_PER_DIGIT: usize = 4;

/// Builds the `mcugan` CLI (release) with cargo's progress on the terminal; returns its path.
fn build_mcugan(root: &Path) -> Result<PathBuf> {
    util::cargo(root, &["build", "--release", "--bin", "mcugan"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| root.join(dir))
        .unwrap_or_else(|| root.join("target"));
    let tool = target
        .join("release")
        .join(format!("mcugan{}", std::env::consts::EXE_SUFFIX));
    if !tool.is_file() {
        bail!("cargo built the tool, but {} is not there", tool.display());
    }
    Ok(tool)
}

/// Runs the `mcugan` CLI built by [`build_mcugan`] from the workspace root.
fn mcugan(tool: &Path, args: &[&str]) -> Result<()> {
    util::run(
        std::process::Command::new(tool)
            .current_dir(crate::root())
            .args(args),
    )
}

fn path(p: &Path) -> Result<&str> {
    match p.to_str() {
        Some(s) => Ok(s),
        None => bail!("{} is not valid UTF-8", p.display()),
    }
}
