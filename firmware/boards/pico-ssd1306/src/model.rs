//! The model blob, built into flash (build.rs picks it: `MCUGAN_MODEL`, or the committed Pico
//! model, or with the `lm3s6965-model` feature the LM3S6965's).

const LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/model.bin")).len();

/// Named so `cargo xtask size` can find the blob (and its exact length) in the ELF.
static MCUGAN_MODEL_BLOB: [u8; LEN] = *include_bytes!(concat!(env!("OUT_DIR"), "/model.bin"));

/// The blob's bytes; the app validates them before any use.
pub fn blob() -> &'static [u8] {
    &MCUGAN_MODEL_BLOB
}
