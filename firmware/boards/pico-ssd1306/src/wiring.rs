//! The wiring, all in this file: to move the display or the button, change the pin types and
//! `Wiring::take` (and `I2cBlock` when the new I²C pins belong to I2C1; the compiler checks that
//! a pin can serve the block). Defaults, on a Raspberry Pi Pico:
//!
//! | signal          | GPIO | Pico pin | other end                                   |
//! | --------------- | ---- | -------- | ------------------------------------------- |
//! | I²C0 SDA        | 4    | 6        | SSD1306 SDA                                 |
//! | I²C0 SCL        | 5    | 7        | SSD1306 SCL                                 |
//! | button          | 15   | 20       | push button to GND (internal pull-up)       |
//! | 3V3(OUT)        |      | 36       | SSD1306 VCC                                 |
//! | GND             |      | 38       | SSD1306 GND, the button's other leg         |
//! | on-board LED    | 25   |          | lit while a digit is generated              |

use rp_pico::hal::fugit::HertzU32;
use rp_pico::hal::gpio::{
    FunctionI2C, FunctionSioInput, FunctionSioOutput, Pin, PullDown, PullUp, bank0,
};
use rp_pico::hal::pac;

/// The I²C block the display's pins belong to.
pub type I2cBlock = pac::I2C0;
pub type Sda = Pin<bank0::Gpio4, FunctionI2C, PullUp>;
pub type Scl = Pin<bank0::Gpio5, FunctionI2C, PullUp>;
pub type ButtonPin = Pin<bank0::Gpio15, FunctionSioInput, PullUp>;
pub type Led = Pin<bank0::Gpio25, FunctionSioOutput, PullDown>;

/// The display's 7-bit I²C address (0x3C on most modules; 0x3D when the address pad is moved).
pub const DISPLAY_ADDRESS: u8 = 0x3C;
/// I²C clock: Fast-mode, which every SSD1306 module takes (a full frame in about 25 ms).
pub const I2C_HZ: u32 = 400_000;

pub struct Wiring {
    pub sda: Sda,
    pub scl: Scl,
    pub button: ButtonPin,
    pub led: Led,
}

impl Wiring {
    pub fn take(pins: rp_pico::Pins) -> Self {
        Wiring {
            sda: pins.gpio4.reconfigure(),
            scl: pins.gpio5.reconfigure(),
            button: pins.gpio15.reconfigure(),
            led: pins.led.reconfigure(),
        }
    }
}

/// The I²C controller on the display's pins.
pub fn i2c(
    block: I2cBlock,
    sda: Sda,
    scl: Scl,
    resets: &mut pac::RESETS,
    system_clock: HertzU32,
) -> rp_pico::hal::I2C<I2cBlock, (Sda, Scl)> {
    rp_pico::hal::I2C::i2c0(
        block,
        sda,
        scl,
        HertzU32::from_raw(I2C_HZ),
        resets,
        system_clock,
    )
}
