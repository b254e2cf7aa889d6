//! From a trained float generator to the integer-only model the firmware runs, and the host's
//! side of that model: its writer, a fast host engine, random test models.
//!
//! The pipeline: read the run's checkpoint and fold BatchNorm into the Linear layers
//! ([`load`], [`fold`]), calibrate and quantize weights and activations ([`quantize`]; int4
//! rows by error-compensating rounding, [`gptq`]), write the blob that `firmware::format`
//! specifies ([`blob`]; the firmware's own validator proves no accumulator can overflow), and
//! verify the integer engine against the float model in tract ([`verify`]). A generator trained
//! elsewhere enters the same pipeline from its ONNX file ([`import`]). [`board_samples`]
//! draws images as a board's screen shows them, for evaluating what the board runs.

pub mod blob;
pub mod board_samples;
pub mod float_model;
pub mod fold;
pub mod gptq;
pub mod host_engine;
pub mod import;
pub mod load;
pub mod pipeline;
pub mod quantize;
pub mod synth;
pub mod verify;

use anyhow::Result;
use std::path::Path;

/// Writes a file atomically, like the trainer's checkpoints.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    checkpoint::write_atomic(path, bytes)?;
    Ok(())
}
