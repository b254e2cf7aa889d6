//! Committed expected outputs (`tests/expected/`), as RTIC keeps its `ci/expected/`: the tests
//! compare against them, so a change in the noise, the engine, a committed model or the board's
//! screen fails until it is regenerated on purpose, and then shows in review as a diff.
//!
//! Regenerate with `MCUGAN_BLESS=1 cargo test -p mcugan-tests`, then read the diff.

use anyhow::{Context, Result, bail};
use harness::screen::Screen;
use std::path::{Path, PathBuf};

/// Set to `1` to write the expected files instead of comparing with them.
pub const BLESS: &str = "MCUGAN_BLESS";

/// Where the expected files live.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("expected")
}

/// Whether this run writes the expected files.
pub fn blessing() -> bool {
    std::env::var_os(BLESS).is_some_and(|v| v == "1")
}

fn hint() -> String {
    format!(
        "if the change is intended, run `{BLESS}=1 cargo test -p mcugan-tests` and review the diff"
    )
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn missing(path: &Path) -> anyhow::Error {
    anyhow::anyhow!("{} is missing: {}", path.display(), hint())
}

/// Compares `actual` with the expected text file `name`, line by line.
pub fn text(name: &str, actual: &str) -> Result<()> {
    let path = dir().join(name);
    if blessing() {
        return write(&path, actual.as_bytes());
    }
    let want = std::fs::read_to_string(&path).map_err(|_| missing(&path))?;
    if want == actual {
        return Ok(());
    }
    let (mut w, mut a) = (want.lines(), actual.lines());
    for line in 1.. {
        match (w.next(), a.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (x, y) => bail!(
                "{} differs at line {line}:\n  expected: {}\n  actual:   {}\n{}",
                path.display(),
                x.unwrap_or("(end of file)"),
                y.unwrap_or("(end of output)"),
                hint()
            ),
        }
    }
    unreachable!("the texts differ, so some line does")
}

/// Compares a grey image with the expected PNG `name` (8-bit greys), pixel for pixel.
pub fn grey_image(name: &str, width: u32, height: u32, pixels: &[u8]) -> Result<()> {
    let path = dir().join(name);
    let img = image::GrayImage::from_raw(width, height, pixels.to_vec())
        .context("pixels do not fill the image")?;
    if blessing() {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        return img
            .save(&path)
            .with_context(|| format!("cannot write {}", path.display()));
    }
    let want = image::open(&path).map_err(|_| missing(&path))?.to_luma8();
    if want.dimensions() != img.dimensions() {
        bail!(
            "{} is {:?}, the output {:?}: {}",
            path.display(),
            want.dimensions(),
            img.dimensions(),
            hint()
        );
    }
    if let Some((i, (w, a))) = want
        .iter()
        .zip(img.iter())
        .enumerate()
        .find(|(_, (w, a))| w != a)
    {
        bail!(
            "{} differs first at ({}, {}): expected grey {w}, got {a}; {}",
            path.display(),
            i as u32 % width,
            i as u32 / width,
            hint()
        );
    }
    Ok(())
}

/// Compares a screen with the expected capture `name` (a PNG as QEMU captures the OLED).
pub fn screen(name: &str, actual: &Screen) -> Result<()> {
    let path = dir().join(name);
    if blessing() {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        return actual.save_capture(&path);
    }
    if !path.is_file() {
        return Err(missing(&path));
    }
    let want = Screen::from_capture(&path)?;
    if let Some((x, y, g, w)) = actual.first_difference(&want) {
        bail!(
            "{}: {} pixels differ, first at ({x}, {y}): got {g}, expected {w}; {}\n\
             got:\n{}expected:\n{}",
            path.display(),
            actual.count_differences(&want),
            hint(),
            actual.to_hex_art(),
            want.to_hex_art()
        );
    }
    Ok(())
}
