//! Puts `memory.x` on the linker's search path and writes the model blob into OUT_DIR, where
//! `include_bytes!` picks it up: the file `MCUGAN_MODEL` names, or else the project's committed
//! default model (`models/lm3s6965/model.bin`, made by `mcugan train` + `mcugan export`).

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    println!("cargo:rerun-if-env-changed=MCUGAN_MODEL");
    let blob = match std::env::var_os("MCUGAN_MODEL") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            std::fs::read(&path)
                .unwrap_or_else(|e| panic!("MCUGAN_MODEL={}: cannot read it: {e}", path.display()))
        }
        _ => {
            let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo"));
            let path = manifest.join("../../../models/lm3s6965/model.bin");
            println!("cargo:rerun-if-changed={}", path.display());
            std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "the default model {} cannot be read ({e}); set MCUGAN_MODEL to a model \
                     blob made by `mcugan export`",
                    path.display()
                )
            })
        }
    };
    std::fs::write(out.join("model.bin"), blob).expect("write model.bin");
}
