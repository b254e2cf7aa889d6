//! Puts `memory.x` on the linker's search path and writes the model blob into OUT_DIR, where
//! `include_bytes!` picks it up: the file `MCUGAN_MODEL` names, or else a random model of the
//! `lm3s6965` training preset's shape, until a trained default model is committed.

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
        // The `lm3s6965` preset's generator: latent 32 + 10 classes → 32 → 64 → 128 → 192 → 784.
        _ => firmware::synth::random_model(0, 32, 10, &[32, 64, 128, 192, 784]),
    };
    std::fs::write(out.join("model.bin"), blob).expect("write model.bin");
}
