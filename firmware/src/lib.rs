//! The device side of mcugan: everything that runs on the microcontroller, written once and run
//! unchanged on every board, in the host simulator and in the exporter's verification.
//!
//! `no_std` and heap-free: buffers are static and sized at compile time, and nothing in the
//! inference path uses floating point (the Cortex-M3 has no FPU). What only a host needs (the
//! blob writer, random test models, the host engine) lives in `export`.
#![no_std]
#![forbid(unsafe_code)]

pub mod app;
pub mod crc;
pub mod engine;
pub mod format;
pub mod frame;
pub mod gesture;
pub mod noise;
