//! Helpers for the end-to-end tests: build the board firmware, boot it in QEMU headless, talk
//! to QEMU over QMP (screen captures, key presses) and read what the firmware logs.

pub mod board;
pub mod demo;
pub mod expected;
pub mod qemu;
pub mod qmp;
pub mod screen;
