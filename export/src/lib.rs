//! From a trained float generator to the integer-only model the firmware runs.
//!
//! The pipeline: fold BatchNorm into the Linear layers ([`fold`]), quantize weights and
//! activations, prove the accumulators cannot overflow, serialize with the format that
//! `firmware` defines, and verify the integer engine against the float model.

pub mod fold;
