//! From a trained float generator to the integer-only model the firmware runs.
//!
//! The pipeline: read the run's checkpoint and fold BatchNorm into the Linear layers
//! ([`load`], [`fold`]), calibrate and quantize weights and activations ([`quantize`]; int4
//! rows by error-compensating rounding, [`gptq`]), prove
//! the accumulators cannot overflow, serialize with the format that `firmware` defines, and
//! verify the integer engine against the float model in tract ([`verify`]).

pub mod float_model;
pub mod fold;
pub mod gptq;
pub mod load;
pub mod pipeline;
pub mod quantize;
pub mod verify;

use anyhow::Result;
use std::path::Path;

/// Writes a file atomically, like the trainer's checkpoints.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    trainer::checkpoint::write_atomic(path, bytes)?;
    Ok(())
}
