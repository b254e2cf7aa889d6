//! The few GPIO operations the board needs: clocking ports, push-pull outputs, pulled-up inputs.

use crate::regs::{self, Reg, gpio::*, sysctl};

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
    /// The DATA register as seen through a mask of this pin alone.
    data: Reg,
    bit: u32,
}

impl Output {
    pub fn new(port: Port, pin: u8, high: bool) -> Self {
        let bit = 1u8 << pin;
        let out = Output {
            data: port.data(bit),
            bit: bit as u32,
        };
        out.set(high);
        regs::set_bits(port.reg(DIR), bit as u32);
        regs::set_bits(port.reg(DR8R), bit as u32);
        regs::set_bits(port.reg(DEN), bit as u32);
        out
    }

    #[inline(always)]
    pub fn set(&self, high: bool) {
        regs::write(self.data, if high { self.bit } else { 0 });
    }
}

/// Makes `pins` (a mask) of `port` digital inputs with pull-ups.
pub fn input_pull_up(port: Port, pins: u8) {
    let dir = regs::read(port.reg(DIR));
    regs::write(port.reg(DIR), dir & !(pins as u32));
    regs::set_bits(port.reg(PUR), pins as u32);
    regs::set_bits(port.reg(DEN), pins as u32);
}

/// The levels of `pins` (a mask) of `port`, high bits set.
#[inline]
pub fn read(port: Port, pins: u8) -> u32 {
    regs::read(port.data(pins)) & pins as u32
}
