//! The few GPIO operations the board needs: clocking ports, push-pull outputs, pulled-up inputs.

use crate::regs::{self, gpio::*, sysctl};

/// RCGC2 bits of the ports this board uses.
pub const CLOCK_A: u32 = 1 << 0;
pub const CLOCK_C: u32 = 1 << 2;
pub const CLOCK_D: u32 = 1 << 3;
pub const CLOCK_E: u32 = 1 << 4;
pub const CLOCK_F: u32 = 1 << 5;

/// Clocks the given ports and waits the few cycles the datasheet asks before their registers
/// respond.
pub fn enable_ports(mask: u32) {
    regs::set_bits(sysctl::RCGC2, mask);
    for _ in 0..4 {
        cortex_m::asm::nop();
    }
}

/// One output pin. The level is written before the pin becomes an output, so it never glitches
/// (PD0 low would select the SD card instead of the OLED).
pub struct Output {
    /// The DATA register address that masks every pin but this one.
    data: u32,
    bit: u32,
}

impl Output {
    pub fn new(port: u32, pin: u32, high: bool) -> Self {
        let bit = 1 << pin;
        let out = Output {
            data: port + DATA + (bit << 2),
            bit,
        };
        out.set(high);
        regs::set_bits(port + DIR, bit);
        regs::set_bits(port + DR8R, bit);
        regs::set_bits(port + DEN, bit);
        out
    }

    #[inline(always)]
    pub fn set(&self, high: bool) {
        regs::write(self.data, if high { self.bit } else { 0 });
    }
}

/// Makes `pins` (a mask) of `port` digital inputs with pull-ups.
pub fn input_pull_up(port: u32, pins: u32) {
    let dir = regs::read(port + DIR);
    regs::write(port + DIR, dir & !pins);
    regs::set_bits(port + PUR, pins);
    regs::set_bits(port + DEN, pins);
}

/// The levels of `pins` (a mask) of `port`, high bits set.
#[inline]
pub fn read(port: u32, pins: u32) -> u32 {
    regs::read(port + DATA + (pins << 2)) & pins
}
