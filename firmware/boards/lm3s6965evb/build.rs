//! Puts `memory.x` on the linker's search path and copies the model blob named by
//! `MCUGAN_MODEL` into OUT_DIR, where `include_bytes!` picks it up.

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
        // No model named: an empty blob, which the firmware reports as a missing model.
        _ => Vec::new(),
    };
    std::fs::write(out.join("model.bin"), blob).expect("write model.bin");
}
