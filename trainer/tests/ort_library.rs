//! A missing or wrong ONNX Runtime library gives a clear error, not a panic; CUDA on a machine
//! without it falls back to the CPU. ONNX Runtime loads once per process, so this file holds a
//! single test that goes from failures to success in order.

use std::io::Write;
use trainer::runtime::{Device, OrtExecutor, RuntimeError, default_library_path};

fn set(path: &std::path::Path) {
    // SAFETY: this test binary runs this single test; no other thread reads the environment.
    unsafe { std::env::set_var("ORT_DYLIB_PATH", path) };
}

#[test]
fn bad_library_paths_fail_cleanly_then_the_real_one_loads() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("nowhere/libonnxruntime.so");
    set(&missing);
    let err = OrtExecutor::new(Device::Cpu)
        .err()
        .expect("missing library must fail");
    let msg = err.to_string();
    assert!(matches!(err, RuntimeError::LibraryMissing { .. }), "{msg}");
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(msg.contains("cargo xtask setup"), "{msg}");

    let fake = dir.path().join("libonnxruntime.so");
    std::fs::File::create(&fake)
        .unwrap()
        .write_all(b"not a shared library")
        .unwrap();
    set(&fake);
    let err = OrtExecutor::new(Device::Cpu)
        .err()
        .expect("a text file must fail");
    let msg = err.to_string();
    assert!(matches!(err, RuntimeError::LibraryLoad { .. }), "{msg}");
    assert!(msg.contains(&fake.display().to_string()), "{msg}");

    // The real library still loads afterwards (a failed load leaves nothing half-done).
    set(&default_library_path().expect("tests run inside the workspace"));
    let cpu = OrtExecutor::new(Device::Cpu).expect("the set-up library loads");
    assert_eq!(cpu.device(), Device::Cpu);

    // CUDA: the set-up library is the CPU-only build, so the request falls back to the CPU
    // (with a message on stderr) instead of failing.
    let cuda = OrtExecutor::new(Device::Cuda).expect("CUDA falls back, never fails");
    assert_eq!(cuda.device(), Device::Cpu);
}
