//! A band of screen rows in the SSD0323's memory layout, for the panic screen: drawn and sent
//! eight rows at a time, it needs 512 bytes of stack rather than a second 4 KB frame.
//!
//! Pixel (x, y) is byte (y - top) · 64 + x / 2; the high nibble holds the even (left) pixel.

use embedded_graphics::pixelcolor::{Gray4, GrayColor};
use embedded_graphics::prelude::*;

pub const WIDTH: u32 = 128;
pub const HEIGHT: u32 = 64;
/// Bytes per row: two pixels a byte.
pub const ROW_BYTES: usize = WIDTH as usize / 2;
/// Rows in a band.
pub const ROWS: usize = 8;

pub struct Band {
    bytes: [u8; ROWS * ROW_BYTES],
    top: i32,
}

impl Band {
    pub const fn new() -> Self {
        Band {
            bytes: [0; ROWS * ROW_BYTES],
            top: 0,
        }
    }

    /// Moves the band to start at screen row `top` and blanks it.
    pub fn reset(&mut self, top: i32) {
        self.top = top;
        self.bytes.fill(0);
    }

    /// The screen row of the first byte row.
    pub fn top(&self) -> i32 {
        self.top
    }

    /// The controller-ordered bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn set(&mut self, x: i32, y: i32, grey: u8) {
        let row = y - self.top;
        if !(0..WIDTH as i32).contains(&x) || !(0..ROWS as i32).contains(&row) {
            return;
        }
        let byte = &mut self.bytes[row as usize * ROW_BYTES + x as usize / 2];
        *byte = firmware::frame::pack_grey(*byte, x as usize, grey);
    }
}

/// Drawing clips to the band: the whole screen's drawing, repeated per band, fills the screen.
impl OriginDimensions for Band {
    fn size(&self) -> Size {
        Size::new(WIDTH, HEIGHT)
    }
}

impl DrawTarget for Band {
    type Color = Gray4;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, color) in pixels {
            self.set(p.x, p.y, color.luma());
        }
        Ok(())
    }
}
