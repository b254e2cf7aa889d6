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
    if device == "cuda" && which.is_none_or(|w| w == "train") {
        crate::setup::onnxruntime_cuda(&root)?;
    }
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
        step(
            "bench firmware: cycles per digit and per dense MAC on the Pico (rp2040js, the LED's lit span), both models",
        );
        pico()?;
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

/// The Pico in rp2040js: one short press per model, timed by the emulator's cycle count between
/// the LED's edges (lit while the app draws the noise and generates). rp2040js charges no flash
/// wait states and no execute-in-place cache misses, so the flash reads are estimated apart, as
/// is the frame's time on the I²C bus, which the emulator transfers instantly.
fn pico() -> Result<()> {
    use firmware::format::Model;
    use harness::rp2040::{self, CLK_SYS_HZ, Script};
    /// Execute-in-place with the Pico's boot stage (W25Q080, quad I/O continuous read, SCK at
    /// clk_sys / 2): a cache miss costs 6 address, 2 mode, 4 dummy and 16 data clocks for an
    /// 8-byte line, 56 system cycles, so 7 a byte. The weights (nearly all of the blob) are read
    /// once per digit and do not fit the 16 KiB cache: every line a miss.
    const FLASH_CYCLES_PER_BYTE: f64 = 56.0 / 8.0;
    for (what, features) in [
        ("seed-size model", vec!["sequence-seeds"]),
        ("lm3s6965 model", vec!["sequence-seeds", "lm3s6965-model"]),
    ] {
        let elf = rp2040::elf_for(&Variant {
            model: None,
            features,
        })?;
        let blob = harness::board::model_blob(&elf)?;
        let macs = Model::from_bytes(&blob)
            .map_err(|e| anyhow::anyhow!("the Pico's {what}: {}", e.as_str()))?
            .macs();
        // Three digits (seeds 0, 1, 2): the kernel skips zero activations, so the count varies.
        const DIGITS: usize = 3;
        let mut script = Script::default();
        script.boot();
        for n in 0..DIGITS {
            script.press(100, true, &format!("digit {n}"));
        }
        let run = rp2040::run(&elf, &script)?;
        let (Some(frame), true) = (run.frames.get(1), run.lit.len() == DIGITS) else {
            bail!("the Pico's {what}: not {DIGITS} generations and frames in rp2040js");
        };
        let each: Vec<u64> = run.lit.iter().map(|l| l.cycles()).collect();
        let cycles = each.iter().sum::<u64>() as f64 / DIGITS as f64;
        let flash = blob.len() as f64 * FLASH_CYCLES_PER_BYTE;
        let bus_ms = frame.bus_bits() as f64 / run.i2c_hz() * 1e3;
        println!(
            "Pico, {what}: {cycles:.0} cycles per digit (seeds 0-2: {each:?}) for {macs} dense MACs: \
             {:.2} per MAC, {:.1} ms at 125 MHz (rp2040js: no flash wait states, no XIP cache misses)",
            cycles / f64::from(macs),
            cycles / CLK_SYS_HZ * 1e3
        );
        println!(
            "  + flash reads, estimated: {} blob bytes × {FLASH_CYCLES_PER_BYTE} cycles = {:.1} ms, so ~{:.1} ms per digit, \
             {:.2} cycles per MAC; + the frame on the I²C bus: {} bytes at {:.0} kHz = {bus_ms:.1} ms",
            blob.len(),
            flash / CLK_SYS_HZ * 1e3,
            (cycles + flash) / CLK_SYS_HZ * 1e3,
            (cycles + flash) / f64::from(macs),
            frame.bus_bytes,
            run.i2c_hz() / 1e3
        );
    }
    Ok(())
}
