//! `cargo xtask bench [NAME]`: criterion benchmarks, each measuring our code against a
//! baseline in the same run (ratios, never absolute timings in unit tests).

use crate::util::{cargo_command, run as run_cmd, step};
use anyhow::{Result, bail};
use harness::board::{Variant, elf_for};
use harness::qemu::{BOARD_HZ, INSTRUCTIONS_PER_TICK, Options, Qemu};
use std::time::Duration;

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
        "export",
        "engine",
        "digits/s of the integer engine vs tract-onnx running the same float generator",
    ),
];

/// The names `cargo xtask bench` accepts: the criterion benchmarks and `firmware`.
const NAMES: &[&str] = &["train", "engine", "firmware"];

pub fn run(which: Option<&str>, device: &str) -> Result<()> {
    if !["cpu", "cuda"].contains(&device) {
        bail!("unknown device `{device}`: expected cpu or cuda");
    }
    if let Some(name) = which
        && !NAMES.contains(&name)
    {
        bail!(
            "unknown benchmark `{name}`: expected one of {}",
            NAMES.join(", ")
        );
    }
    let root = crate::root();
    for (name, package, target, what) in BENCHES {
        if which.is_some_and(|w| w != *name) {
            continue;
        }
        step(&format!("bench {name}: {what}"));
        // The device is read by the training benchmark; the others run on the CPU.
        run_cmd(
            cargo_command(&root)
                .args(["bench", "-p", package, "--bench", target])
                .env("MCUGAN_BENCH_DEVICE", device),
        )?;
    }
    if which.is_none_or(|w| w == "firmware") {
        step(
            "bench firmware: instructions per digit and per dense MAC on the LM3S6965 (QEMU -icount), fast kernel vs reference",
        );
        firmware()?;
    }
    Ok(())
}

/// Boots the default firmware under `-icount shift=0`, where the instruction count of a
/// generation is exact, and reads the boot self-test's figures for both kernels.
fn firmware() -> Result<()> {
    let elf = elf_for(&Variant::default())?;
    let options = Options {
        icount_shift: Some(0),
        timeout: Duration::from_secs(120),
        ..Options::default()
    };
    let qemu = Qemu::boot(&elf, options)?;
    let mut per_mac = Vec::new();
    for kernel in ["Fast", "Reference"] {
        let (ticks, macs) = qemu.selftest(kernel)?;
        let instructions = ticks * INSTRUCTIONS_PER_TICK;
        let ratio = instructions as f64 / macs as f64;
        println!(
            "{kernel:>9}: {instructions} instructions per digit (± {INSTRUCTIONS_PER_TICK}) for {macs} dense MACs: \
             {ratio:.3} per MAC, ~{:.1} ms per digit at 50 MHz",
            instructions as f64 / BOARD_HZ * 1e3
        );
        per_mac.push(ratio);
    }
    println!(
        "fast kernel: {:.2}x fewer instructions than the reference kernel",
        per_mac[1] / per_mac[0]
    );
    qemu.check_oled_errors()
}
