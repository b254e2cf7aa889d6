//! A training run's folder, as `mcugan train` writes it and `export` and `eval` read it: the
//! run's configuration ([`config`]), its tensors in safetensors ([`file`]), the generator's
//! tensors by name and shape ([`run`]), and sheets of sample digits as PNGs ([`sheet`]); and
//! where the project folder itself is ([`workspace`]), for the defaults every tool shares.
//!
//! Kept free of the run loop and of any runtime, so that reading a checkpoint means knowing
//! only this crate.

pub mod config;
pub mod file;
pub mod run;
pub mod sheet;
pub mod workspace;

pub use config::{CLASSES, Conditioning, IMAGE_DIM, IMAGE_SIDE, Preset, RunConfig};
pub use file::{
    CONFIG_FILE, Checkpoint, CheckpointError, NamedTensor, TENSORS_FILE, Tensor, load, save,
    write_atomic,
};
pub use run::Run;
