//! The board firmware run for real in an emulator, for the end-to-end tests and `cargo xtask`
//! (demo, bench): build the board's ELF, boot the LM3S6965's in QEMU headless, talking to QEMU
//! over QMP (screen captures, key presses), or the Pico's in rp2040js ([`rp2040`]), read what the
//! firmware logs or does, and predict the screen with the host app.

pub mod board;
pub mod demo;
pub mod expected;
pub mod node;
pub mod qemu;
pub mod qmp;
pub mod rp2040;
pub mod screen;
