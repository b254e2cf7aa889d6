//! The QEMU stage of `cargo xtask demo`: boot the firmware, ask for each digit 0–9 in turn
//! (RIGHT, then SELECT a few times, each a new seed) and keep each screen with the firmware's
//! figures for it.

use anyhow::{Context, Result, bail};
use firmware::app::Button;
use std::path::Path;

use crate::qemu::{Options, Qemu, field};
use crate::screen::{HEIGHT, Screen, WIDTH};

/// One generated digit as the board showed it.
pub struct Capture {
    pub digit: u8,
    pub screen: Screen,
    /// The firmware's log line for the SELECT that generated it.
    pub line: String,
    /// Ticks the generation took, and its MACs.
    pub gen_ticks: u64,
    pub macs: u64,
}

/// Boots `elf` and captures `per_digit` samples of each digit 0–9 (the first RIGHT moves from
/// "any" to 0), digit by digit.
pub fn capture_digits(
    elf: &Path,
    options: Options,
    per_digit: usize,
) -> Result<(Qemu, Vec<Capture>)> {
    let mut qemu = Qemu::boot(elf, options)?;
    if !qemu.log().last().is_some_and(|l| l.contains("model=ok")) {
        bail!("the firmware refused its model: {:?}", qemu.log().last());
    }
    let mut captures = Vec::new();
    for digit in 0..10u8 {
        qemu.press_and_wait(Button::Right)?;
        for _ in 0..per_digit {
            let line = qemu.press_and_wait(Button::Select)?;
            captures.push(Capture {
                digit,
                screen: qemu.capture()?,
                gen_ticks: field(&line, "gen_ticks").context("gen_ticks")?,
                macs: field(&line, "macs").context("macs")?,
                line,
            });
        }
    }
    qemu.check_oled_errors()?;
    Ok((qemu, captures))
}

/// The screens in rows of `columns` (one row per digit when `columns` is the samples per
/// digit), each pixel `scale`² with a 4-pixel gap, as a grey PNG.
pub fn contact_sheet(captures: &[Capture], columns: usize, scale: u32, path: &Path) -> Result<()> {
    const GAP: u32 = 4;
    let (w, h) = (WIDTH as u32 * scale, HEIGHT as u32 * scale);
    let columns = columns.max(1);
    let rows = captures.len().div_ceil(columns) as u32;
    let mut sheet = image::GrayImage::from_pixel(
        GAP + columns as u32 * (w + GAP),
        GAP + rows * (h + GAP),
        image::Luma([40]),
    );
    for (i, c) in captures.iter().enumerate() {
        let x0 = GAP + (i % columns) as u32 * (w + GAP);
        let y0 = GAP + (i / columns) as u32 * (h + GAP);
        for y in 0..h {
            for x in 0..w {
                let level = c.screen.get((x / scale) as usize, (y / scale) as usize);
                sheet.put_pixel(x0 + x, y0 + y, image::Luma([level * 17]));
            }
        }
    }
    sheet
        .save(path)
        .with_context(|| format!("cannot write {}", path.display()))
}
