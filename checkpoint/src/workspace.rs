//! The project folder the tools run in: where `cargo xtask setup` puts the MNIST files, the ONNX
//! Runtime library and the caches, and where the committed models live. Found at run time, never
//! compiled in, so that a moved or installed `mcugan` binary looks where its user is.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Names the workspace explicitly, overriding the search from the current directory.
pub const ENV: &str = "MCUGAN_WORKSPACE";
/// Where `cargo xtask setup` puts MNIST.
pub const MNIST: &str = "data/mnist";
/// Where `cargo xtask setup` puts the ONNX Runtime CPU library, and its file name (the version
/// `ort` is built for).
pub const ONNX_RUNTIME_DIR: &str = ".cache/onnxruntime";
pub const ONNX_RUNTIME_LIBRARY: &str = "libonnxruntime.so.1.31.1";
/// Where `cargo xtask setup --cuda` puts the CUDA build of ONNX Runtime (named as the CPU
/// library is) with the NVIDIA libraries its CUDA provider needs, all in one folder: ONNX
/// Runtime loads its providers from its own folder, and cuDNN its sub-libraries from its own.
pub const ONNX_RUNTIME_CUDA_DIR: &str = ".cache/onnxruntime-cuda";
/// The NVIDIA libraries the trainer loads from that folder by absolute path, in this order
/// (each needs only those before it, the system's and the driver's `libcuda.so.1`), before
/// ONNX Runtime loads its CUDA provider: the provider's `DT_NEEDED` entries, and the names it
/// and NVRTC open at run time (cuDNN, NVRTC's built-ins), then match libraries already loaded,
/// so that no `LD_LIBRARY_PATH` is needed.
pub const CUDA_PRELOAD: [&str; 7] = [
    "libcudart.so.13",
    "libcublasLt.so.13",
    "libcublas.so.13",
    "libcurand.so.10",
    "libnvrtc-builtins.so.13.0",
    "libnvrtc.so.13",
    "libcudnn.so.9",
];
/// The rest of that folder: ONNX Runtime's own three libraries (the one `ort` loads, the
/// provider bridge and the CUDA provider, which ONNX Runtime opens itself), and the cuDNN
/// sub-libraries `libcudnn.so.9` opens on demand from its own folder (its RPATH is `$ORIGIN`).
pub const CUDA_OTHER_FILES: [&str; 12] = [
    ONNX_RUNTIME_LIBRARY,
    "libonnxruntime_providers_shared.so",
    ONNX_RUNTIME_CUDA_PROVIDER,
    "libcudnn_graph.so.9",
    "libcudnn_ops.so.9",
    "libcudnn_heuristic.so.9",
    "libcudnn_engines_precompiled.so.9",
    "libcudnn_engines_runtime_compiled.so.9",
    "libcudnn_engines_tensor_ir.so.9",
    "libcudnn_cnn.so.9",
    "libcudnn_adv.so.9",
    "libcudnn_ext.so.9",
];
/// ONNX Runtime's CUDA provider, in that folder.
pub const ONNX_RUNTIME_CUDA_PROVIDER: &str = "libonnxruntime_providers_cuda.so";
/// Where the tools cache the project's trained MNIST classifier.
pub const CLASSIFIER_CACHE: &str = ".cache/classifier";
/// The committed default model's folder; the LM3S6965 firmware embeds its `model.bin`.
pub const DEFAULT_MODEL_DIR: &str = "models/lm3s6965";
/// The package name the workspace's own `Cargo.toml` declares.
const PACKAGE: &str = "mcugan";

/// Why no workspace was found.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WorkspaceError {
    #[error(
        "{ENV}={path}: not an mcugan workspace (no Cargo.toml of the `{PACKAGE}` package there)"
    )]
    NotWorkspace { path: PathBuf },
    #[error(
        "no mcugan workspace in {start} or any folder above it, needed for {needed}: run inside \
         the project folder, set {ENV} to it, or give the path explicitly"
    )]
    NotFound { start: PathBuf, needed: String },
}

/// Whether `dir` holds the project: its `Cargo.toml` declares the `mcugan` package.
pub fn is_workspace(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
        return false;
    };
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            return value.trim().trim_matches('"') == PACKAGE;
        }
    }
    false
}

/// The workspace: [`ENV`] when set, else the nearest folder at or above the current directory
/// that [`is_workspace`]. `needed` says what the caller wants it for, for the error.
pub fn root(needed: &str) -> Result<PathBuf, WorkspaceError> {
    if let Some(path) = std::env::var_os(ENV).map(PathBuf::from) {
        return if is_workspace(&path) {
            Ok(path)
        } else {
            Err(WorkspaceError::NotWorkspace { path })
        };
    }
    let start = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    find_from(&start).ok_or_else(|| WorkspaceError::NotFound {
        start,
        needed: needed.to_string(),
    })
}

/// The nearest folder at or above `start` that [`is_workspace`].
pub fn find_from(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| is_workspace(dir))
        .map(Path::to_path_buf)
}

/// `rel` inside the workspace (see [`root`]).
pub fn path(rel: &str, needed: &str) -> Result<PathBuf, WorkspaceError> {
    root(needed).map(|root| root.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_package_not_a_member_or_a_stranger() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("Cargo.toml"),
            "[workspace]\nmembers = [\"a\"]\n\n[package]\nname = \"mcugan\"\n",
        )
        .unwrap();
        let member = root.join("a/src");
        std::fs::create_dir_all(&member).unwrap();
        std::fs::write(root.join("a/Cargo.toml"), "[package]\nname = \"a\"\n").unwrap();
        assert_eq!(find_from(&member).as_deref(), Some(root));
        assert!(!is_workspace(&root.join("a")));

        let stranger = tempfile::tempdir().unwrap();
        std::fs::write(
            stranger.path().join("Cargo.toml"),
            "[dependencies]\nname = \"mcugan\"\n",
        )
        .unwrap();
        assert!(!is_workspace(stranger.path()));
    }

    #[test]
    fn this_checkout_is_found_from_a_crate_folder() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let found = find_from(here).expect("the checkout is a workspace");
        assert_eq!(found, here.parent().unwrap());
    }
}
