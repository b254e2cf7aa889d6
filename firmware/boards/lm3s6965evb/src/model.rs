//! The model blob, built into flash (build.rs writes it into OUT_DIR from `MCUGAN_MODEL`).

const LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/model.bin")).len();

/// Named so `cargo xtask size` and the tests can find the blob (and its exact length) in the ELF.
static MCUGAN_MODEL_BLOB: [u8; LEN] = *include_bytes!(concat!(env!("OUT_DIR"), "/model.bin"));

/// The blob's bytes; the app validates them before any use.
pub fn blob() -> &'static [u8] {
    &MCUGAN_MODEL_BLOB
}
