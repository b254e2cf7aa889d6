//! The OSRAM 128×64 OLED's SSD0323 controller on SSI0, data/command select on PC7.

use crate::band::{HEIGHT, ROW_BYTES};
use crate::gpio::{self, Output};
use crate::regs::gpio::{PORT_C, PORT_D};
use crate::ssi::Ssi0;

/// StellarisWare's `osram128x64x4.c` initialisation (from OSRAM app note AN018), byte for byte
/// as it goes on the wire: QEMU's SSD0323 model accepts every one of these commands.
const INIT: &[&[u8]] = &[
    &[0x15, 0, 63],                                          // column window
    &[0x75, 0, 63],                                          // row window
    &[0x81, 50],                                             // contrast
    &[0x85],                                                 // half current range
    &[0xA0, 0x52], // re-map: horizontal increment, nibble remap, COM split
    &[0xA1, 0],    // display start line
    &[0xA2, 0x4C], // display offset
    &[0xA4],       // normal display mode
    &[0xA8, 63],   // multiplex ratio
    &[0xB1, 0x22], // phase length
    &[0xB2, 70],   // row period
    &[0xB3, 0xF1], // display clock divide
    &[0xBF, 0x0D], // VSL
    &[0xBE, 0x02], // VCOMH
    &[0xBC, 0x10], // VP
    &[0xB8, 0x01, 0x11, 0x22, 0x32, 0x43, 0x54, 0x65, 0x76], // grey scale table
    &[0xAD, 0x03], // DC-DC on
    &[0xAF],       // display on
];

pub struct Oled {
    ssi: Ssi0,
    /// PC7: low = command, high = data.
    dc: Output,
    /// PD0: the SD card's chip select, kept high so the bus talks to the OLED.
    _sd_cs: Output,
}

impl Oled {
    /// Sets up the select lines and the controller, and blanks the screen.
    pub fn init(ssi: Ssi0) -> Self {
        gpio::enable_ports(gpio::CLOCK_C | gpio::CLOCK_D);
        let _sd_cs = Output::new(PORT_D, 0, true);
        let dc = Output::new(PORT_C, 7, true);
        let mut oled = Oled { ssi, dc, _sd_cs };
        for cmd in INIT {
            oled.command(cmd);
        }
        oled.blank();
        oled
    }

    /// Sends whole rows from `top` down as one window write: column window 0..63, row window
    /// over the rows, then the bytes in controller order (64 a row).
    pub fn flush(&mut self, top: i32, bytes: &[u8]) {
        self.window(top, (bytes.len() / ROW_BYTES) as i32);
        for &b in bytes {
            self.ssi.transfer(b);
        }
    }

    /// Turns every pixel off, without a buffer.
    pub fn blank(&mut self) {
        self.window(0, HEIGHT as i32);
        for _ in 0..HEIGHT as usize * ROW_BYTES {
            self.ssi.transfer(0);
        }
    }

    /// Opens a full-width window over `rows` rows from `top` and switches to data.
    fn window(&mut self, top: i32, rows: i32) {
        let first = top.clamp(0, HEIGHT as i32 - 1) as u8;
        let last = (top + rows - 1).clamp(0, HEIGHT as i32 - 1) as u8;
        self.command(&[0x15, 0, ROW_BYTES as u8 - 1, 0x75, first, last]);
        self.dc.set(true);
    }

    fn command(&mut self, bytes: &[u8]) {
        self.dc.set(false);
        for &b in bytes {
            self.ssi.transfer(b);
        }
    }
}
