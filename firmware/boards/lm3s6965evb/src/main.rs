//! mcugan on the TI LM3S6965 evaluation board: buttons in, generated digits out on the OLED.
//! Runs unchanged on the real board and in QEMU (`qemu-system-arm -M lm3s6965evb`).
#![no_std]
#![no_main]

mod buttons;
mod framebuffer;
mod gpio;
mod log;
mod oled;
mod panic;
mod pattern;
mod regs;
mod ssi;
mod timing;

use cortex_m_rt::entry;

use crate::buttons::Buttons;
use crate::framebuffer::Framebuffer;
use crate::log::log;
use crate::oled::Oled;
use crate::pattern::Pattern;
use crate::ssi::Ssi0;
use crate::timing::Clock;

/// Bytes below the stack pointer at boot left unpainted (main's own frame grows into them).
const PAINT_GUARD: u32 = 256;

#[entry]
fn main() -> ! {
    regs::stack::paint(PAINT_GUARD);
    let Some(core) = cortex_m::Peripherals::take() else {
        panic!("core peripherals taken twice");
    };
    let clock = Clock::start(core.SYST);
    let mut oled = Oled::init(Ssi0::init());
    let mut buttons = Buttons::init();
    let Some(fb) = cortex_m::singleton!(: Framebuffer<4096> = Framebuffer::new(0)) else {
        panic!("framebuffer taken twice");
    };

    let mut pattern = Pattern::default();
    let mut frame: u32 = 0;
    let start = clock.ticks();
    let _ = pattern.draw(fb);
    oled.flush(fb);
    log!(
        "mcugan: ready frame=0 ticks={} period_ns={} stack_used={} stack_capacity={}",
        clock.ticks() - start,
        clock.period_ns(),
        regs::stack::used(),
        regs::stack::capacity()
    );

    let mut next_sample = clock.millis();
    loop {
        clock.wait();
        let now = clock.millis();
        if now.wrapping_sub(next_sample) as i32 >= 0 {
            next_sample = now.wrapping_add(buttons::SAMPLE_MS);
            buttons.sample();
        }
        while let Some(button) = buttons.next_release() {
            let start = clock.ticks();
            pattern.press(button);
            let _ = pattern.draw(fb);
            oled.flush(fb);
            frame += 1;
            log!(
                "mcugan: button={} frame={} offset={} ticks={}",
                button.name(),
                frame,
                pattern.offset(),
                clock.ticks() - start
            );
        }
    }
}
