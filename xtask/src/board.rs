//! The board crates live outside the workspace (each cross-compiles with its own
//! `.cargo/config.toml`): build and lint them from their folders, into their own target folders.

use anyhow::Result;
use std::path::PathBuf;

use crate::util;

pub use boards::{ALL, Board, LM3S6965};

/// What xtask does with a board of the table: build, lint, find its ELF.
pub trait BoardCrate {
    /// The board crate's folder.
    fn dir(&self) -> PathBuf;
    /// The release ELF `build` leaves.
    fn elf(&self) -> PathBuf;
    /// Builds the firmware (release; model from `MCUGAN_MODEL` or the features' default).
    fn build(&self, features: &[&str]) -> Result<()>;
    /// fmt and clippy on the firmware for its own target, warnings as errors, with no features
    /// (as a real board runs it) and with all of them.
    fn lint(&self) -> Result<()>;
    /// Runs cargo in the board folder with its target folder pinned, whatever CARGO_TARGET_DIR
    /// the caller has.
    fn cargo(&self, args: &[&str]) -> Result<()>;
}

impl BoardCrate for Board {
    fn dir(&self) -> PathBuf {
        crate::root().join(self.folder)
    }

    fn elf(&self) -> PathBuf {
        self.dir()
            .join("target")
            .join(self.target)
            .join("release")
            .join(self.bin)
    }

    fn build(&self, features: &[&str]) -> Result<()> {
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

    fn lint(&self) -> Result<()> {
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
