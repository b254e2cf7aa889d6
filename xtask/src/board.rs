//! The LM3S6965 board crate lives outside the workspace (it cross-compiles with its own
//! `.cargo/config.toml`): build and lint it from its folder, into its own target folder.

use anyhow::Result;
use std::path::PathBuf;

use crate::util;

/// The board crate's folder.
pub fn dir() -> PathBuf {
    crate::root().join("firmware/boards/lm3s6965evb")
}

/// The release ELF `build` leaves.
pub fn elf() -> PathBuf {
    dir().join("target/thumbv7m-none-eabi/release/mcugan-lm3s6965evb")
}

/// Builds the firmware (release; model from `MCUGAN_MODEL` or the default).
pub fn build() -> Result<()> {
    util::step("LM3S6965 firmware (release, thumbv7m-none-eabi)");
    cargo(&["build", "--release", "--quiet"])
}

/// Clippy on the firmware for its own target, warnings as errors: as QEMU and the tests build
/// it (default features), and as a real board without a debugger does (none).
pub fn lint() -> Result<()> {
    util::step("LM3S6965 firmware: cargo fmt --check, clippy (warnings are errors)");
    cargo(&["fmt", "--", "--check"])?;
    cargo(&["clippy", "--release", "--quiet", "--", "-D", "warnings"])?;
    cargo(&[
        "clippy",
        "--release",
        "--quiet",
        "--no-default-features",
        "--",
        "-D",
        "warnings",
    ])
}

/// Runs cargo in the board folder with its target folder pinned, whatever CARGO_TARGET_DIR the
/// caller has.
fn cargo(args: &[&str]) -> Result<()> {
    let dir = dir();
    util::run(
        util::cargo_command(&dir)
            .args(args)
            .env("CARGO_TARGET_DIR", dir.join("target")),
    )
}
