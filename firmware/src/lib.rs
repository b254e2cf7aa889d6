//! The device side of mcugan: everything that runs on the microcontroller, written once and run
//! unchanged on every board, in the host simulator and in the exporter's verification.
//!
//! `no_std` and heap-free: buffers are static and sized at compile time, and nothing in the
//! inference path uses floating point (the Cortex-M3 has no FPU). What only a host needs (building
//! a blob from a quantized model, random test models, the host engine) lives in `export`; the
//! wire format's one reader and writer are in `format`.
#![no_std]
#![forbid(unsafe_code)]

pub mod app;
pub mod crc;
pub mod engine;
pub mod format;
pub mod frame;
pub mod gesture;
pub mod noise;

/// A blob in a word-aligned static: the format aligns each layer's weights relative to the
/// blob's start (see [`format`]), which makes them aligned words only if the blob itself is.
#[repr(C, align(4))]
pub struct AlignedBlob<const N: usize>(pub [u8; N]);

/// Defines the board's model blob, from the `model.bin` its build script wrote into `OUT_DIR`,
/// and `pub fn blob() -> &'static [u8]` to reach it. The static is named `MCUGAN_MODEL_BLOB`
/// (the boards table's `MODEL_SYMBOL`), so that the size check and the harness find the blob,
/// and its exact length, in the ELF (a valid blob's length is a multiple of 4, so the aligned
/// static has no padding).
#[macro_export]
macro_rules! include_model {
    () => {
        const LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/model.bin")).len();

        static MCUGAN_MODEL_BLOB: $crate::AlignedBlob<LEN> =
            $crate::AlignedBlob(*include_bytes!(concat!(env!("OUT_DIR"), "/model.bin")));

        /// The blob's bytes; the app validates them before any use.
        pub fn blob() -> &'static [u8] {
            &MCUGAN_MODEL_BLOB.0
        }
    };
}
