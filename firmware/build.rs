//! Tells the engine which core it is compiled for: `mcugan_armv6m` on `thumbv6m-*` (Cortex-M0
//! and M0+), whose Thumb-1 instruction set wants a kernel of its own.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(mcugan_armv6m)");
    if std::env::var("TARGET").is_ok_and(|t| t.starts_with("thumbv6m")) {
        println!("cargo::rustc-cfg=mcugan_armv6m");
    }
}
