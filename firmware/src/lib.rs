//! The device side of mcugan: everything that runs on the microcontroller, written once and run
//! unchanged on every board, in the host simulator and in the exporter's verification.
//!
//! `no_std` and heap-free: buffers are static and sized at compile time, and nothing in the
//! inference path uses floating point (the Cortex-M3 has no FPU).
#![no_std]
#![forbid(unsafe_code)]

pub mod crc;
