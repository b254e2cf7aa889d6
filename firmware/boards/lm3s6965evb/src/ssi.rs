//! SSI0 (PL022) as an SPI master for the OLED, with PA2/PA3/PA5 as clock, frame and transmit.

use crate::gpio;
use crate::regs::{self, ssi0, sysctl};

/// SPI mode 2 (clock idles high, data captured on the first edge), 8-bit frames, as
/// StellarisWare's OLED driver configures it.
const CR0_MODE2_8BIT: u32 = (1 << 6) | 0x7;
/// Clock prescaler and serial clock rate: 12.5 MHz / (2 × (1 + 5)) ≈ 1 MHz on a real board.
const CPSR: u32 = 2;
const SCR: u32 = 5;

/// The SSI0 port, configured; owning it is the right to talk on the bus.
pub struct Ssi0(());

impl Ssi0 {
    /// Clocks SSI0 and GPIO A, routes PA2/3/5 to SSI0 and enables the port as master.
    pub fn init() -> Self {
        regs::set_bits(sysctl::RCGC1, 1 << 4);
        gpio::enable_ports(gpio::CLOCK_A);
        let pins = (1 << 2) | (1 << 3) | (1 << 5);
        use regs::gpio::{AFSEL, DEN, DR8R, PORT_A, PUR};
        for offset in [AFSEL, DR8R, PUR, DEN] {
            regs::set_bits(PORT_A.reg(offset), pins);
        }

        regs::write(ssi0::CR1, 0); // disabled, master
        regs::write(ssi0::CPSR, CPSR);
        regs::write(ssi0::CR0, (SCR << 8) | CR0_MODE2_8BIT);
        regs::write(ssi0::CR1, ssi0::CR1_SSE);
        let ssi = Ssi0(());
        ssi.drain();
        ssi
    }

    /// Sends one byte and waits for the byte clocked back: QEMU's PL022 stops transmitting
    /// while its 8-entry receive FIFO is full and drops writes to a full transmit FIFO.
    #[inline]
    pub fn transfer(&mut self, byte: u8) {
        while regs::read(ssi0::SR) & ssi0::SR_TNF == 0 {}
        regs::write(ssi0::DR, u32::from(byte));
        while regs::read(ssi0::SR) & ssi0::SR_RNE == 0 {}
        let _ = regs::read(ssi0::DR);
    }

    /// Empties the receive FIFO.
    fn drain(&self) {
        while regs::read(ssi0::SR) & ssi0::SR_RNE != 0 {
            let _ = regs::read(ssi0::DR);
        }
    }
}
