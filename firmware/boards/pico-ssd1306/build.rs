//! Puts `memory.x` on the linker's search path and writes the model blob into OUT_DIR, where
//! `include_bytes!` picks it up: the file `MCUGAN_MODEL` names, else the committed Pico model
//! (`models/pico/model.bin`, the seed-size generator), or with the `lm3s6965-model` feature the
//! committed LM3S6965 model (`models/lm3s6965/model.bin`).

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    println!("cargo:rerun-if-env-changed=MCUGAN_MODEL");
    let (path, named) = match std::env::var_os("MCUGAN_MODEL") {
        Some(path) if !path.is_empty() => (PathBuf::from(path), true),
        _ => {
            let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo"));
            let which = if std::env::var_os("CARGO_FEATURE_LM3S6965_MODEL").is_some() {
                "lm3s6965"
            } else {
                "pico"
            };
            (
                manifest.join(format!("../../../models/{which}/model.bin")),
                false,
            )
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
    std::fs::write(out.join("model.bin"), blob).expect("write model.bin");
}
