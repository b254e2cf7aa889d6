//! What every board's `build.rs` does, once: put its `memory.x` on the linker's search path,
//! and write the model blob into `OUT_DIR` for `firmware::include_model!`: the file the
//! `MCUGAN_MODEL` environment variable names, or else the board's committed default.

use std::path::PathBuf;
use std::println;

fn out_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
}

/// Writes `memory_x` (the board's `include_bytes!("memory.x")`) where the linker finds it.
pub fn link_memory_x(memory_x: &[u8]) {
    let out = out_dir();
    std::fs::write(out.join("memory.x"), memory_x).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
}

/// Copies the model blob into `OUT_DIR/model.bin`: `MCUGAN_MODEL`'s file, else `default` (a
/// path under the workspace root, such as `models/lm3s6965/model.bin`). A blob that cannot
/// be read stops the build with the path and what to do.
pub fn embed_model(default: &str) {
    println!("cargo:rerun-if-env-changed=MCUGAN_MODEL");
    let (path, named) = match std::env::var_os("MCUGAN_MODEL") {
        Some(path) if !path.is_empty() => (PathBuf::from(path), true),
        _ => {
            // The boards' crates sit three folders below the workspace root.
            let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo"));
            (manifest.join("../../..").join(default), false)
        }
    };
    println!("cargo:rerun-if-changed={}", path.display());
    let blob = std::fs::read(&path).unwrap_or_else(|e| {
        if named {
            panic!("MCUGAN_MODEL={}: cannot read it: {e}", path.display())
        }
        panic!(
            "the default model {} cannot be read ({e}); set MCUGAN_MODEL to a model blob made \
             by `mcugan export`",
            path.display()
        )
    });
    std::fs::write(out_dir().join("model.bin"), blob).expect("write model.bin");
}
