//! mcugan on the TI LM3S6965 evaluation board: buttons in, generated digits out on the OLED.
//! Runs unchanged on the real board and in QEMU (`qemu-system-arm -M lm3s6965evb`).
#![no_std]
#![no_main]

mod app_clock;
mod band;
mod buttons;
mod gpio;
mod log;
mod model;
mod oled;
mod panic;
mod regs;
mod selftest;
mod ssi;
mod timing;

use cortex_m_rt::entry;
use firmware::app::{App, SeedMode};
use firmware::frame::Frame;

use crate::app_clock::AppClock;
use crate::buttons::Buttons;
use crate::log::log;
use crate::oled::Oled;
use crate::ssi::Ssi0;
use crate::timing::Clock;

/// Bytes below the stack pointer at boot left unpainted (main's own frame grows into them).
const PAINT_GUARD: u32 = 256;
/// Activation buffer width: at least the model's widest layer.
const WIDTH: usize = 1024;

#[cfg(feature = "sequence-seeds")]
const SEEDS: SeedMode = SeedMode::Sequence(0);
#[cfg(not(feature = "sequence-seeds"))]
const SEEDS: SeedMode = SeedMode::Entropy(0x6D63_7567);

#[entry]
fn main() -> ! {
    regs::stack::paint(PAINT_GUARD);
    let Some(core) = cortex_m::Peripherals::take() else {
        panic!("core peripherals taken twice");
    };
    let clock = Clock::start(core.SYST);
    let mut oled = Oled::init(Ssi0::init());
    let mut buttons = Buttons::init();
    // Statics, so `cargo xtask size` counts them and the stack stays small.
    let Some(frame) = cortex_m::singleton!(: Frame = Frame::new()) else {
        panic!("frame taken twice");
    };
    let Some(app) = cortex_m::singleton!(: App<'static, WIDTH> = App::new(model::blob(), SEEDS))
    else {
        panic!("app taken twice");
    };

    // Only where the log can be read: it delays the first frame by two generations.
    if let (true, Ok(model)) = (cfg!(feature = "semihosting"), app.model())
        && let Some(scratch) =
            cortex_m::singleton!(: selftest::Scratch<WIDTH> = selftest::Scratch::new())
    {
        selftest::kernels(model, &clock, scratch);
    }

    let start = clock.ticks();
    let _ = app.render(frame);
    oled.flush(0, frame.as_bytes());
    match app.model() {
        Ok(m) => log!(
            "mcugan: ready frame=0 model=ok blob={} macs={} ticks={} period_ns={} stack_used={} stack_capacity={} held={}",
            model::blob().len(),
            m.macs(),
            clock.ticks() - start,
            clock.period_ns(),
            regs::stack::used(),
            regs::stack::capacity(),
            buttons.held()
        ),
        Err(e) => log!(
            "mcugan: ready frame=0 model=error blob={} error={:?} period_ns={} held={}",
            model::blob().len(),
            e.as_str(),
            clock.period_ns(),
            buttons.held()
        ),
    }

    if cfg!(feature = "panic-selftest") {
        panic!("self-test: the panic screen");
    }

    let mut app_clock = AppClock::new(&clock);
    let mut frames: u32 = 0;
    let mut next_sample = clock.millis();
    loop {
        clock.wait();
        let now = clock.millis();
        if now.wrapping_sub(next_sample) as i32 >= 0 {
            next_sample = now.wrapping_add(buttons::SAMPLE_MS);
            buttons.sample();
        }
        while let Some(button) = buttons.next_press() {
            log!("mcugan: pressed={}", button.name());
        }
        while let Some(button) = buttons.next_release() {
            let start = clock.ticks();
            app_clock.reset();
            let changed = app.handle(button, &mut app_clock);
            let generated = app.shown().filter(|_| app_clock.last_interval().is_some());
            if changed {
                let _ = app.render(frame);
                oled.flush(0, frame.as_bytes());
                frames += 1;
            }
            log!(
                "mcugan: button={} frame={} seed={} steps={} us={} gen_ticks={} macs={} ticks={} stack_used={}",
                button.name(),
                frames,
                app.seed(),
                app.steps(),
                app.micros().unwrap_or(0),
                app_clock.last_interval().unwrap_or(0),
                generated.map_or(0, |g| g.macs),
                clock.ticks() - start,
                regs::stack::used()
            );
        }
    }
}
