//! Samples as a board's screen shows them, for `mcugan eval --model`: the firmware's own noise
//! and integer engine (the code the board runs, compiled for the host), the image in the
//! screen's 16 grey levels or, for the one-bit boards, the app's ordered dithering averaged
//! back over each image pixel's square of screen points.

use anyhow::{Context, Result, bail};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use firmware::app::{Digit, generate};
use firmware::format::Model;
use firmware::noise::Choice;
use std::path::Path;

/// Which screen the samples are seen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// The LM3S6965's 16 greys: each pixel is its level / 15.
    Grey,
    /// An SSD1306's one bit per point: each pixel is the share of its lit screen points.
    Mono,
}

impl Screen {
    pub fn name(self) -> &'static str {
        match self {
            Screen::Grey => "grey",
            Screen::Mono => "mono",
        }
    }
}

/// Reads a model blob and checks that the firmware accepts it; the error names the file.
pub fn read_blob(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Err(e) = Model::from_bytes(&bytes) {
        bail!(
            "{}: not a model the firmware accepts: {e} ({} bytes)",
            path.display(),
            bytes.len()
        );
    }
    Ok(bytes)
}

/// Images `[n, width·height]` in [0, 1] as `screen` shows them, for the board's seeds
/// `start..start + n` (as SELECT draws them in a sequence), each asked for the class
/// `seed % classes` of a conditional model; and those classes (empty when unconditional).
pub fn board_samples(
    model: &Model<'_>,
    screen: Screen,
    start: u32,
    n: usize,
) -> Result<(Vec<f32>, Vec<u8>)> {
    let classes = model.header.classes as u32;
    let width = model.max_width();
    let (mut a, mut b) = (vec![0u8; width], vec![0u8; width]);
    let (mut images, mut labels) = (Vec::with_capacity(n * model.pixels()), Vec::new());
    for i in 0..n as u32 {
        let seed = start.wrapping_add(i);
        let choice = match classes {
            0 => Choice::Any,
            k => Choice::Digit((seed % k) as u8),
        };
        let g = generate(model, seed, choice, 0, &mut a, &mut b)
            .map_err(|e| anyhow::anyhow!("generating seed {seed}: {e}"))?;
        seen(&g.digit, screen, &mut images);
        labels.extend(g.class);
    }
    Ok((images, labels))
}

/// Appends `digit`'s pixels as `screen` shows them, row by row.
fn seen(digit: &Digit, screen: Screen, out: &mut Vec<f32>) {
    let area = digit.area();
    let scale = area.size.width as usize / digit.width.max(1);
    for y in 0..digit.height {
        for x in 0..digit.width {
            out.push(match screen {
                Screen::Grey => digit.level(x, y) as f32 / 15.0,
                Screen::Mono => {
                    let corner = area.top_left + Point::new((x * scale) as i32, (y * scale) as i32);
                    let square = Rectangle::new(corner, Size::new(scale as u32, scale as u32));
                    let lit = square
                        .points()
                        .filter(|&p| digit.shade_at::<BinaryColor>(p).is_on())
                        .count();
                    lit as f32 / (scale * scale) as f32
                }
            });
        }
    }
}
