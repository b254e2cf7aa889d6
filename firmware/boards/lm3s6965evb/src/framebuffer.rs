//! A 4-bit grey framebuffer in the SSD0323's own memory layout, so a flush is one plain copy.
//!
//! Pixel (x, y) is byte (y - top) · 64 + x / 2; the high nibble holds the even (left) pixel.
//! `BYTES` = 4096 is the whole 128×64 screen; smaller buffers hold a band of rows starting at
//! `top` (the panic screen renders in bands so it needs no second full buffer).

use embedded_graphics::pixelcolor::{Gray4, GrayColor};
use embedded_graphics::prelude::*;

pub const WIDTH: u32 = 128;
pub const HEIGHT: u32 = 64;
/// Bytes per row: two pixels a byte.
pub const ROW_BYTES: usize = WIDTH as usize / 2;

pub struct Framebuffer<const BYTES: usize> {
    bytes: [u8; BYTES],
    top: i32,
}

impl<const BYTES: usize> Framebuffer<BYTES> {
    const ROWS: i32 = (BYTES / ROW_BYTES) as i32;

    /// A black buffer whose first row is screen row `top`.
    pub const fn new(top: i32) -> Self {
        Framebuffer {
            bytes: [0; BYTES],
            top,
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

    /// Rows held.
    pub fn rows(&self) -> i32 {
        Self::ROWS
    }

    /// The controller-ordered bytes.
    pub fn bytes(&self) -> &[u8; BYTES] {
        &self.bytes
    }

    fn index(&self, x: i32, y: i32) -> Option<usize> {
        let row = y - self.top;
        if !(0..WIDTH as i32).contains(&x) || !(0..Self::ROWS).contains(&row) {
            return None;
        }
        Some(row as usize * ROW_BYTES + x as usize / 2)
    }

    #[inline]
    fn set(&mut self, x: i32, y: i32, grey: u8) {
        if let Some(i) = self.index(x, y) {
            let byte = &mut self.bytes[i];
            *byte = if x & 1 == 0 {
                (*byte & 0x0F) | (grey << 4)
            } else {
                (*byte & 0xF0) | (grey & 0x0F)
            };
        }
    }
}

impl<const BYTES: usize> OriginDimensions for Framebuffer<BYTES> {
    fn size(&self) -> Size {
        Size::new(WIDTH, HEIGHT)
    }
}

impl<const BYTES: usize> DrawTarget for Framebuffer<BYTES> {
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

    fn clear(&mut self, color: Self::Color) -> Result<(), Self::Error> {
        let l = color.luma();
        self.bytes.fill((l << 4) | l);
        Ok(())
    }
}
