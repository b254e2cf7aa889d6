//! A 128×64 frame of 16 greys in the SSD0323's memory layout (byte `y · 64 + x / 2`, the even
//! pixel in the high nibble): the board sends it as one window write, the simulator and the
//! tests read pixels from it, so all three see the same bytes. [`MonoFrame`] is the one-bit
//! screen of the SSD1306 boards, for the simulator's `--mono` and the tests.

use embedded_graphics::pixelcolor::{BinaryColor, Gray4, GrayColor};
use embedded_graphics::prelude::*;

pub const WIDTH: usize = 128;
pub const HEIGHT: usize = 64;
/// Bytes of one frame: two pixels per byte.
pub const BYTES: usize = WIDTH * HEIGHT / 2;

/// The SSD0323's byte holding pixels `x` (even, high nibble) and `x + 1` (low nibble), with
/// pixel `x`'s grey `level` (0–15) written into it.
#[inline]
pub const fn pack_grey(byte: u8, x: usize, level: u8) -> u8 {
    if x.is_multiple_of(2) {
        (byte & 0x0F) | (level << 4)
    } else {
        (byte & 0xF0) | (level & 0x0F)
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: [u8; BYTES],
}

impl Default for Frame {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Frame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                f.write_str(match self.level(x, y) {
                    0 => " ",
                    1..=5 => ".",
                    6..=10 => "+",
                    _ => "#",
                })?;
            }
            f.write_str("\n")?;
        }
        Ok(())
    }
}

impl Frame {
    pub const fn new() -> Self {
        Frame { bytes: [0; BYTES] }
    }

    /// Grey level 0–15 of pixel (x, y); 0 outside the frame.
    pub fn level(&self, x: usize, y: usize) -> u8 {
        if x >= WIDTH || y >= HEIGHT {
            return 0;
        }
        let byte = self.bytes[y * WIDTH / 2 + x / 2];
        if x.is_multiple_of(2) {
            byte >> 4
        } else {
            byte & 0x0F
        }
    }

    fn set(&mut self, x: usize, y: usize, level: u8) {
        let slot = &mut self.bytes[y * WIDTH / 2 + x / 2];
        *slot = pack_grey(*slot, x, level);
    }

    /// The controller's framebuffer bytes.
    pub fn as_bytes(&self) -> &[u8; BYTES] {
        &self.bytes
    }
}

/// The pixels that fall on the 128×64 screen, as (x, y, colour); the rest are dropped.
fn on_screen<C: PixelColor>(
    pixels: impl IntoIterator<Item = Pixel<C>>,
) -> impl Iterator<Item = (usize, usize, C)> {
    pixels.into_iter().filter_map(|Pixel(p, c)| {
        let (x, y) = (usize::try_from(p.x).ok()?, usize::try_from(p.y).ok()?);
        (x < WIDTH && y < HEIGHT).then_some((x, y, c))
    })
}

impl OriginDimensions for Frame {
    fn size(&self) -> Size {
        Size::new(WIDTH as u32, HEIGHT as u32)
    }
}

impl DrawTarget for Frame {
    type Color = Gray4;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Gray4>>,
    {
        for (x, y, c) in on_screen(pixels) {
            self.set(x, y, c.luma());
        }
        Ok(())
    }
}

/// A 128×64 one-bit frame in the SSD1306's page layout (byte `(y / 8) · 128 + x`, bit `y % 8`),
/// which the app draws with ordered dithering (see [`crate::app::Shade`]).
#[derive(Clone, PartialEq, Eq)]
pub struct MonoFrame {
    bytes: [u8; WIDTH * HEIGHT / 8],
}

impl Default for MonoFrame {
    fn default() -> Self {
        Self::new()
    }
}

impl MonoFrame {
    pub const fn new() -> Self {
        MonoFrame {
            bytes: [0; WIDTH * HEIGHT / 8],
        }
    }

    /// Whether pixel (x, y) is lit; false outside the frame.
    pub fn is_on(&self, x: usize, y: usize) -> bool {
        x < WIDTH && y < HEIGHT && self.bytes[y / 8 * WIDTH + x] & (1 << (y % 8)) != 0
    }

    /// The controller's framebuffer bytes.
    pub fn as_bytes(&self) -> &[u8; WIDTH * HEIGHT / 8] {
        &self.bytes
    }
}

impl OriginDimensions for MonoFrame {
    fn size(&self) -> Size {
        Size::new(WIDTH as u32, HEIGHT as u32)
    }
}

impl DrawTarget for MonoFrame {
    type Color = BinaryColor;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<BinaryColor>>,
    {
        for (x, y, c) in on_screen(pixels) {
            let (byte, bit) = (&mut self.bytes[y / 8 * WIDTH + x], 1u8 << (y % 8));
            *byte = if c.is_on() { *byte | bit } else { *byte & !bit };
        }
        Ok(())
    }
}
