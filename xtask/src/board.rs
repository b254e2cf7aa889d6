//! The board crates live outside the workspace (each cross-compiles with its own
//! `.cargo/config.toml`): build and lint them from their folders, into their own target folders.

use anyhow::Result;
use std::ops::Range;
use std::path::PathBuf;

use crate::util;

/// One board crate and the budgets its firmware must fit.
pub struct Board {
    pub name: &'static str,
    /// Folder under the workspace root.
    folder: &'static str,
    pub target: &'static str,
    bin: &'static str,
    /// Where flash and RAM sit in the address space; their lengths are the budgets.
    pub flash: Range<u64>,
    pub ram: Range<u64>,
    /// RAM held back for the stack on top of the statics.
    pub stack_reserve: u64,
    /// What `flash` includes besides the firmware, in words (shown with the figures).
    pub flash_note: &'static str,
    /// The builds CI checks: (label, cargo features) for each model the board can embed.
    pub builds: &'static [(&'static str, &'static [&'static str])],
}

/// The TI LM3S6965 evaluation board (and QEMU's model of it). Its firmware paints its stack and
/// reports the deepest use in its ready line (a few hundred bytes so far): 8 KiB is ample.
pub const LM3S6965: Board = Board {
    name: "LM3S6965",
    folder: "firmware/boards/lm3s6965evb",
    target: "thumbv7m-none-eabi",
    bin: "mcugan-lm3s6965evb",
    flash: 0..256 * 1024,
    ram: 0x2000_0000..0x2000_0000 + 64 * 1024,
    stack_reserve: 8 * 1024,
    flash_note: "",
    builds: &[("default model", &[])],
};

/// The Raspberry Pi Pico with an SSD1306: 2 MiB of flash whose first 256 bytes are the boot
/// stage (counted in the image), 256 KiB of SRAM (the app's buffers are statics).
pub const PICO: Board = Board {
    name: "Pico",
    folder: "firmware/boards/pico-ssd1306",
    target: "thumbv6m-none-eabi",
    bin: "mcugan-pico-ssd1306",
    flash: 0x1000_0000..0x1000_0000 + 2048 * 1024,
    ram: 0x2000_0000..0x2000_0000 + 256 * 1024,
    stack_reserve: 8 * 1024,
    flash_note: ", boot stage included",
    builds: &[
        ("seed-size model", &[]),
        ("lm3s6965 model", &["lm3s6965-model"]),
    ],
};

pub const ALL: [&Board; 2] = [&LM3S6965, &PICO];

impl Board {
    /// The board crate's folder.
    pub fn dir(&self) -> PathBuf {
        crate::root().join(self.folder)
    }

    /// The release ELF `build` leaves.
    pub fn elf(&self) -> PathBuf {
        self.dir()
            .join("target")
            .join(self.target)
            .join("release")
            .join(self.bin)
    }

    /// Builds the firmware (release; model from `MCUGAN_MODEL` or the features' default).
    pub fn build(&self, features: &[&str]) -> Result<()> {
        util::step(&format!(
            "{} firmware (release, {}{})",
            self.name,
            self.target,
            with_features(features)
        ));
        let joined = features.join(",");
        let mut args = vec!["build", "--release", "--quiet"];
        if !features.is_empty() {
            args.extend(["--features", &joined]);
        }
        self.cargo(&args)
    }

    /// fmt and clippy on the firmware for its own target, warnings as errors, with no features
    /// (as a real board runs it) and with all of them.
    pub fn lint(&self) -> Result<()> {
        util::step(&format!(
            "{} firmware: cargo fmt --check, clippy (warnings are errors)",
            self.name
        ));
        self.cargo(&["fmt", "--", "--check"])?;
        for features in ["--no-default-features", "--all-features"] {
            self.cargo(&[
                "clippy",
                "--release",
                "--quiet",
                features,
                "--",
                "-D",
                "warnings",
            ])?;
        }
        Ok(())
    }

    /// Runs cargo in the board folder with its target folder pinned, whatever CARGO_TARGET_DIR
    /// the caller has.
    fn cargo(&self, args: &[&str]) -> Result<()> {
        let dir = self.dir();
        util::run(
            util::cargo_command(&dir)
                .args(args)
                .env("CARGO_TARGET_DIR", dir.join("target")),
        )
    }
}

fn with_features(features: &[&str]) -> String {
    if features.is_empty() {
        String::new()
    } else {
        format!(", features {}", features.join(","))
    }
}
