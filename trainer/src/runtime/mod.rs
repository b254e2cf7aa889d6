//! Runs step graphs while keeping the training state (parameters, moments, statistics) inside
//! the runtime: ONNX Runtime for training, tract as the independent runtime tests compare with.
//!
//! Convention: a graph input whose name is a state tensor reads it; a graph output named
//! `next.<name>` replaces that state tensor after the run; every other input is fed per call
//! and every other output can be fetched.

pub mod cuda;
mod fused;
mod onnxruntime;
mod tract;

pub use onnxruntime::{OrtExecutor, default_library_path, ort_environment};
pub use tract::{TractEval, TractExecutor};

use crate::graph::Graph;
use crate::optim::Fusion;
use thiserror::Error;

/// Prefix of a graph output that holds the new value of a state tensor.
pub const NEXT: &str = "next.";

/// Where the ONNX Runtime sessions run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// CUDA, or the CPU with a message when CUDA cannot be used.
    Cuda,
    /// CUDA or an error (`cuda!`), for scripts that must not fall back silently. Only asked
    /// for: an executor runs on [`Device::Cuda`] or [`Device::Cpu`].
    CudaOnly,
}

impl Device {
    /// Whether CUDA is asked for.
    pub fn wants_cuda(self) -> bool {
        self != Device::Cpu
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::CudaOnly => "cuda!",
        })
    }
}

impl std::str::FromStr for Device {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda),
            "cuda!" | "gpu!" => Ok(Device::CudaOnly),
            _ => Err(RuntimeError::Usage(format!(
                "unknown device `{s}`: expected `cpu`, `cuda` (the CPU when CUDA cannot be \
                 used) or `cuda!` (an error then)"
            ))),
        }
    }
}

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found at {path}: run `cargo xtask setup`, or point ORT_DYLIB_PATH at libonnxruntime.so"
    )]
    LibraryMissing { path: String },
    #[error("{0}")]
    NoWorkspace(String),
    #[error(
        "cannot load the ONNX Runtime library {path}: {reason} (run `cargo xtask setup`, or point ORT_DYLIB_PATH at a libonnxruntime.so 1.24 or newer)"
    )]
    LibraryLoad { path: String, reason: String },
    #[error(
        "CUDA is not available, and `--device cuda!` does not fall back to the CPU:{}",
        .0.list()
    )]
    Cuda(cuda::CudaUnavailable),
    #[error("ONNX Runtime: {0}")]
    Ort(String),
    #[error("tract: {0}")]
    Tract(String),
    #[error("no state tensor named `{0}`")]
    UnknownState(String),
    #[error("graph `{graph}` needs input `{input}`: neither fed nor a state tensor")]
    MissingInput { graph: String, input: String },
    #[error("`{name}`: {len} values given, its shape {shape:?} holds {expected}")]
    Size {
        name: String,
        len: usize,
        shape: Vec<usize>,
        expected: usize,
    },
    #[error("{0}")]
    Usage(String),
    #[error("graph: {0}")]
    Graph(#[from] crate::graph::GraphError),
}

pub type RResult<T> = Result<T, RuntimeError>;

/// Handle of a graph loaded into an [`Executor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphHandle(pub(crate) usize);

/// A runtime that holds named f32 state and runs f32 step graphs against it.
pub trait Executor {
    /// Compiles `graph` (f32) for this runtime.
    fn load(&mut self, graph: &Graph, name: &str) -> RResult<GraphHandle>;
    /// Creates or replaces the state tensor `name`.
    fn set_state(&mut self, name: &str, shape: &[usize], data: &[f32]) -> RResult<()>;
    /// Copies the state tensor `name` out, with its shape.
    fn state(&self, name: &str) -> RResult<(Vec<usize>, Vec<f32>)>;
    /// Runs a graph: `feeds` are its non-state inputs; returns the `fetch` outputs in order and
    /// replaces each state tensor that has a `next.` output.
    fn run(
        &mut self,
        graph: GraphHandle,
        feeds: &[(&str, &[f32])],
        fetch: &[&str],
    ) -> RResult<Vec<Vec<f32>>>;
    /// The runtime and device, for messages.
    fn describe(&self) -> String;
    /// The optimizer form this runtime runs (standard ONNX ops unless it registers the
    /// fused kernels).
    fn fusion(&self) -> Fusion {
        Fusion::Standard
    }
}

pub(crate) fn check_len(name: &str, shape: &[usize], len: usize) -> RResult<()> {
    let expected = shape.iter().product::<usize>();
    if expected != len {
        return Err(RuntimeError::Size {
            name: name.into(),
            len,
            shape: shape.to_vec(),
            expected,
        });
    }
    Ok(())
}
