//! The five buttons (active low): up PE0, down PE1, left PE2, right PE3, select PF1.
//!
//! Sampled every few milliseconds and debounced; a button acts when it is released. QEMU never
//! sets the initial levels, so every button reads pressed until its first press: the first
//! release is then the first real event, and on a real board nothing fires at boot. Presses are
//! reported too, so a test can hold a key until the board has seen it, however slow the host.

pub use firmware::app::Button;

use crate::gpio;
use crate::regs::gpio::{PORT_E, PORT_F};

/// The buttons in bit order of the pin masks below.
const ALL: [Button; 5] = Button::ALL;

/// Milliseconds between samples.
pub const SAMPLE_MS: u32 = 4;
/// Consecutive equal samples before a level counts (12 ms).
const STABLE_SAMPLES: u8 = 3;

const PINS_E: u8 = 0b1111;
const PIN_F: u8 = 1 << 1;

pub struct Buttons {
    /// Debounced levels, bit i for `ALL[i]`, set = pressed.
    stable: u8,
    candidate: u8,
    count: u8,
    /// Released since the last `next_release`, same bits.
    released: u8,
    /// Pressed since the last `next_press`, same bits.
    pressed: u8,
}

impl Buttons {
    /// Clocks ports E and F and makes the button pins pulled-up inputs.
    pub fn init() -> Self {
        gpio::enable_ports(gpio::CLOCK_E | gpio::CLOCK_F);
        gpio::input_pull_up(PORT_E, PINS_E);
        gpio::input_pull_up(PORT_F, PIN_F);
        let now = raw();
        Buttons {
            stable: now,
            candidate: now,
            count: 0,
            released: 0,
            pressed: 0,
        }
    }

    /// Debounced levels now, bit i for `Button::ALL[i]`, set = pressed.
    pub fn held(&self) -> u8 {
        self.stable
    }

    /// Takes one sample of the pins.
    pub fn sample(&mut self) {
        self.feed(raw());
    }

    /// The next button released and not yet reported, lowest first.
    pub fn next_release(&mut self) -> Option<Button> {
        take_lowest(&mut self.released)
    }

    /// The next button pressed and not yet reported, lowest first.
    pub fn next_press(&mut self) -> Option<Button> {
        take_lowest(&mut self.pressed)
    }

    fn feed(&mut self, pressed: u8) {
        if pressed != self.candidate {
            self.candidate = pressed;
            self.count = 0;
        } else if self.count < STABLE_SAMPLES {
            self.count += 1;
            if self.count == STABLE_SAMPLES {
                self.released |= self.stable & !pressed;
                self.pressed |= !self.stable & pressed;
                self.stable = pressed;
            }
        }
    }
}

/// Clears the lowest set bit of `bits` and names its button.
fn take_lowest(bits: &mut u8) -> Option<Button> {
    let i = (0..ALL.len()).find(|&i| *bits & (1 << i) != 0)?;
    *bits &= !(1 << i);
    Some(ALL[i])
}

/// Pressed buttons now, bit i for `ALL[i]`.
fn raw() -> u8 {
    let e = gpio::read(PORT_E, PINS_E);
    let f = gpio::read(PORT_F, PIN_F);
    let mut pressed = (!e & PINS_E as u32) as u8;
    if f & PIN_F as u32 == 0 {
        pressed |= 1 << 4;
    }
    pressed
}
