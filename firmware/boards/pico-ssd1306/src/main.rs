//! mcugan on a Raspberry Pi Pico with a 128×64 SSD1306 OLED on I²C: press the button, a freshly
//! generated digit appears, dithered to the display's one-bit pixels. A short press draws a new
//! sample of the chosen digit, a long press moves to the next digit ("any", 0–9) and draws it.
//! The wiring is in `wiring.rs`.
#![no_std]
#![no_main]

mod bus;
mod clock;
mod model;
mod wiring;

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{InputPin, OutputPin};
use firmware::app::{App, SeedMode};
use firmware::gesture::{OneButton, SAMPLE_MS};
use panic_halt as _;
use rp_pico::hal::{self, Clock, pac};
use ssd1306::prelude::*;
use ssd1306::{I2CDisplayInterface, Ssd1306};

use crate::bus::Bus;
use crate::clock::AppClock;
use crate::wiring::Wiring;

/// Activation buffer width: at least the model's widest layer (the seed-size model's 1,024).
const WIDTH: usize = 1024;

#[cfg(feature = "sequence-seeds")]
const SEEDS: SeedMode = SeedMode::Sequence(0);
#[cfg(not(feature = "sequence-seeds"))]
const SEEDS: SeedMode = SeedMode::Entropy(0x6D63_7567);

#[rp_pico::entry]
fn main() -> ! {
    let Some(mut pac) = pac::Peripherals::take() else {
        panic!("peripherals taken twice");
    };
    let mut watchdog = hal::Watchdog::new(pac.WATCHDOG);
    let Ok(clocks) = hal::clocks::init_clocks_and_plls(
        rp_pico::XOSC_CRYSTAL_FREQ,
        pac.XOSC,
        pac.CLOCKS,
        pac.PLL_SYS,
        pac.PLL_USB,
        &mut pac.RESETS,
        &mut watchdog,
    ) else {
        panic!("clocks did not start");
    };
    let sio = hal::Sio::new(pac.SIO);
    let pins = rp_pico::Pins::new(
        pac.IO_BANK0,
        pac.PADS_BANK0,
        sio.gpio_bank0,
        &mut pac.RESETS,
    );
    let Wiring {
        sda,
        scl,
        mut button,
        mut led,
    } = Wiring::take(pins);
    let i2c = wiring::i2c(
        pac.I2C0,
        sda,
        scl,
        &mut pac.RESETS,
        clocks.system_clock.freq(),
    );
    let mut timer = hal::Timer::new(pac.TIMER, &mut pac.RESETS, &clocks);
    let mut clock = AppClock(timer);

    let interface = I2CDisplayInterface::new_custom_address(Bus(i2c), wiring::DISPLAY_ADDRESS);
    let mut display = Ssd1306::new(interface, DisplaySize128x64, DisplayRotation::Rotate0)
        .into_buffered_graphics_mode();
    // Without a display there is nothing to show: blink the LED until one answers.
    while display.init().is_err() {
        let _ = led.set_high();
        timer.delay_ms(100);
        let _ = led.set_low();
        timer.delay_ms(400);
    }

    // A static, so `cargo xtask size` counts it.
    let Some(app) = cortex_m::singleton!(: App<'static, WIDTH> = App::new(model::blob(), SEEDS))
    else {
        panic!("app taken twice");
    };
    let _ = app.render(&mut display);
    let _ = display.flush();

    let mut one_button = OneButton::new();
    loop {
        timer.delay_ms(SAMPLE_MS);
        let pressed = button.is_low().unwrap_or(false);
        let Some(gesture) = one_button.sample(pressed, clock.millis()) else {
            continue;
        };
        let _ = led.set_high();
        let mut changed = false;
        for &b in gesture.buttons() {
            changed |= app.handle(b, &mut clock);
        }
        let _ = led.set_low();
        if changed {
            let _ = app.render(&mut display);
            let _ = display.flush();
        }
    }
}
