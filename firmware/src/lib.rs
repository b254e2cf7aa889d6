//! The device side of mcugan: everything that runs on the microcontroller, written once and run
//! unchanged on every board, in the host simulator and in the exporter's verification.
//!
//! `no_std` and heap-free: buffers are static and sized at compile time, and nothing in the
//! inference path uses floating point (the Cortex-M3 has no FPU). The `std` feature adds the
//! host-only model builder, synthetic test models and the host engine (`host`).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

pub mod app;
#[cfg(feature = "std")]
pub mod builder;
pub mod crc;
pub mod engine;
pub mod format;
pub mod frame;
pub mod gesture;
#[cfg(feature = "std")]
pub mod host;
pub mod noise;
#[cfg(feature = "std")]
pub mod synth;
