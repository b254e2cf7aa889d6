//! The board firmware run for real in an emulator, for the end-to-end tests and `cargo xtask`
//! (demo, bench): build the board's ELF, boot it in QEMU headless, talk to QEMU over QMP
//! (screen captures, key presses), read what the firmware logs, and predict the screen with the
//! host app.

pub mod board;
pub mod demo;
pub mod expected;
pub mod qemu;
pub mod qmp;
pub mod screen;
