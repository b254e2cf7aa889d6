//! `cargo xtask bench [NAME]`: criterion benchmarks, each measuring our code against a
//! baseline in the same run (ratios, never absolute timings in unit tests).

use crate::util::{run as run_cmd, step};
use anyhow::{Result, bail};
use std::process::Command;

/// (name on the command line, package, bench target, what it compares).
/// Each issue that adds a benchmark adds one row here.
const BENCHES: &[(&str, &str, &str, &str)] = &[
    (
        "train",
        "trainer",
        "gan_step",
        "ms per seed GAN step (D + G, batch 128) on ONNX Runtime CPU vs the same step in PyTorch",
    ),
    (
        "engine",
        "firmware",
        "engine",
        "digits/s of the integer engine vs tract-onnx running the same float generator",
    ),
];

/// The names `cargo xtask bench` accepts, including those not built yet.
const PLANNED: &[&str] = &["train", "engine", "firmware"];

pub fn run(which: Option<&str>, device: &str) -> Result<()> {
    if !["cpu", "cuda"].contains(&device) {
        bail!("unknown device `{device}`: expected cpu or cuda");
    }

    if let Some(name) = which
        && !PLANNED.contains(&name)
        && !BENCHES.iter().any(|b| b.0 == name)
    {
        bail!(
            "unknown benchmark `{name}`: expected one of {}",
            PLANNED.join(", ")
        );
    }
    let root = crate::root();
    let mut ran = 0;
    for (name, package, target, what) in BENCHES {
        if which.is_some_and(|w| w != *name) {
            continue;
        }
        step(&format!("bench {name}: {what}"));
        // The device is read by the training benchmark; the others run on the CPU.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run_cmd(
            Command::new(cargo)
                .args(["bench", "-p", package, "--bench", target])
                .env("MCUGAN_BENCH_DEVICE", device)
                .current_dir(&root),
        )?;
        ran += 1;
    }
    if ran == 0 {
        step(&format!(
            "bench: `{}` is not built yet",
            which.unwrap_or("any benchmark")
        ));
    }
    Ok(())
}
