//! The host-side trainer: reads MNIST-format data and trains the GAN with ONNX Runtime.

pub mod data;
