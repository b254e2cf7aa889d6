//! The host-side trainer: reads MNIST-format data and trains the GAN with ONNX Runtime.
//!
//! Each optimisation step is one ONNX graph (forward, backward and Adam) built by [`graph`],
//! differentiated by [`autodiff`] and run by [`runtime`] (ONNX Runtime, or tract in tests).

pub mod autodiff;
pub mod classifier;
pub mod data;
pub mod eval;
pub mod gan;
pub mod graph;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod optim;
pub mod report;
pub mod runtime;
pub mod train;

pub use checkpoint::NamedTensor;
pub use classifier::{MlpClassifier, MlpConfig};
pub use gan::{GanConfig, GanTrainer, MemoryEstimate, StepLosses, generator_onnx};
pub use optim::Adam;
pub use runtime::{Device, RuntimeError};
