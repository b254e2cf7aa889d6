//! On panic: log the message, show it on the OLED, and stop (exiting QEMU with a failure code a
//! second later).

use core::fmt::Write;
use core::panic::PanicInfo;
use embedded_graphics::mono_font::{MonoTextStyle, ascii::FONT_6X10};
use embedded_graphics::pixelcolor::Gray4;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};

use crate::band::{self, Band, HEIGHT};
use crate::log::{exit_failure, log};
use crate::oled::Oled;
use crate::regs::{self, systick};
use crate::ssi::Ssi0;

/// How long the panic screen stays up before QEMU is told to exit.
const SHOW_MS: u32 = 1000;
/// Characters per line of the 6×10 font on 128 pixels.
const COLUMNS: usize = 21;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cortex_m::interrupt::disable();
    // One line: the message and where, cut at the buffer's end.
    let mut text = Cut(heapless::String::new());
    let _ = write!(text, "{}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(text, " @{}:{}", short_file(loc.file()), loc.line());
    }
    let text = text.0;

    log!("mcugan: panic: {}", text);

    // The panic may have come mid-transfer: set the bus and controller up again from scratch.
    let mut oled = Oled::init(Ssi0::init());
    let mut band = Band::new();
    for top in (0..HEIGHT as i32).step_by(band::ROWS) {
        band.reset(top);
        draw(&mut band, &text);
        oled.flush(band.top(), band.bytes());
    }
    log!("mcugan: panic screen shown");
    hold(SHOW_MS);
    exit_failure()
}

/// Waits `ms` milliseconds on SysTick's wrap flag (interrupts are off), if SysTick runs: long
/// enough for a test to capture the screen before QEMU exits.
fn hold(ms: u32) {
    if regs::read(systick::CSR) & systick::CSR_ENABLE == 0 {
        return;
    }
    let mut left = ms;
    while left > 0 {
        if regs::read(systick::CSR) & systick::CSR_COUNTFLAG != 0 {
            left -= 1;
        }
    }
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

/// Text that keeps what fits and drops the rest, where `heapless::String` would drop a whole
/// piece that does not fit.
struct Cut(heapless::String<128>);

impl Write for Cut {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// The file name without its folders, to save screen space.
fn short_file(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
