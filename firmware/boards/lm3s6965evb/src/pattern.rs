//! A stand-in screen until the firmware crate's app lands: a title and grey bars that shift
//! with the buttons, simple enough for the end-to-end tests to predict every pixel.

use embedded_graphics::mono_font::{MonoTextStyle, ascii::FONT_6X10};
use embedded_graphics::pixelcolor::Gray4;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

use crate::buttons::Button;

/// First row of the bars; the title sits above.
pub const BARS_TOP: i32 = 16;

#[derive(Default)]
pub struct Pattern {
    /// Grey of the leftmost bar; bar i (8 pixels wide) has grey (offset + i) mod 16.
    offset: u8,
}

impl Pattern {
    /// Right/left shift the greys by one, up/down by four, select by eight.
    pub fn press(&mut self, button: Button) {
        let step = match button {
            Button::Right => 1,
            Button::Left => 15,
            Button::Up => 4,
            Button::Down => 12,
            Button::Select => 8,
        };
        self.offset = (self.offset + step) % 16;
    }

    pub fn offset(&self) -> u8 {
        self.offset
    }

    pub fn draw<D: DrawTarget<Color = Gray4>>(&self, target: &mut D) -> Result<(), D::Error> {
        target.clear(Gray4::BLACK)?;
        let style = MonoTextStyle::new(&FONT_6X10, Gray4::WHITE);
        Text::with_baseline("mcugan lm3s6965", Point::zero(), style, Baseline::Top).draw(target)?;
        for bar in 0..16u8 {
            let grey = Gray4::new((self.offset + bar) % 16);
            Rectangle::new(Point::new(i32::from(bar) * 8, BARS_TOP), Size::new(8, 48))
                .into_styled(PrimitiveStyle::with_fill(grey))
                .draw(target)?;
        }
        Ok(())
    }
}
