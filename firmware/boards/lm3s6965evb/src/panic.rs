//! On panic: log the message, show it on the OLED, and stop (exiting QEMU with a failure code).

use core::fmt::Write;
use core::panic::PanicInfo;
use embedded_graphics::mono_font::{MonoTextStyle, ascii::FONT_6X10};
use embedded_graphics::pixelcolor::Gray4;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};

use crate::framebuffer::{Framebuffer, HEIGHT, ROW_BYTES};
use crate::log::{exit_failure, log};
use crate::oled::Oled;
use crate::ssi::Ssi0;

/// Characters per line of the 6×10 font on 128 pixels.
const COLUMNS: usize = 21;
/// Rows rendered at a time: the whole screen in eight bands of 512 bytes, on the stack.
const BAND_ROWS: usize = 8;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cortex_m::interrupt::disable();
    log!("mcugan: panic: {}", info);

    let mut text = heapless::String::<128>::new();
    // A message longer than the buffer is cut; what fits is still shown.
    let _ = write!(text, "{}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(text, " @{}:{}", short_file(loc.file()), loc.line());
    }

    // The panic may have come mid-transfer: set the bus and controller up again from scratch.
    let mut oled = Oled::init(Ssi0::init());
    let mut band = Framebuffer::<{ BAND_ROWS * ROW_BYTES }>::new(0);
    for top in (0..HEIGHT as i32).step_by(BAND_ROWS) {
        band.reset(top);
        draw(&mut band, &text);
        oled.flush(&band);
    }
    exit_failure()
}

/// "PANIC" in full white, then the message wrapped at 21 columns in light grey.
fn draw<D: DrawTarget<Color = Gray4>>(target: &mut D, message: &str) {
    let title = MonoTextStyle::new(&FONT_6X10, Gray4::WHITE);
    let body = MonoTextStyle::new(&FONT_6X10, Gray4::new(12));
    let _ = Text::with_baseline("PANIC", Point::zero(), title, Baseline::Top).draw(target);
    let mut y = 11;
    let mut rest = message;
    while !rest.is_empty() && y + 10 <= HEIGHT as i32 {
        let cut = rest
            .char_indices()
            .nth(COLUMNS)
            .map_or(rest.len(), |(i, _)| i);
        let (line, tail) = rest.split_at(cut);
        let _ = Text::with_baseline(line, Point::new(0, y), body, Baseline::Top).draw(target);
        rest = tail;
        y += 10;
    }
}

/// The file name without its folders, to save screen space.
fn short_file(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
