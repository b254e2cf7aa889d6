//! The CUDA library set of `cargo xtask setup --cuda` is complete and loads, without a GPU:
//! the preloaded libraries load by absolute path in their order, after which every other
//! library of the set loads too, except where the NVIDIA driver's `libcuda.so.1` is needed and
//! absent (then that must be the only name left unresolved). A clean clone has no set (2 GB),
//! so this is ignored in the plain test run; `cargo xtask test --cuda` sets it up and runs it.
//! ONNX Runtime loads once per process, so this file holds a single test.

use checkpoint::workspace::{CUDA_OTHER_FILES, CUDA_PRELOAD, ONNX_RUNTIME_CUDA_PROVIDER};
use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_LAZY, RTLD_NOW};
use object::read::elf::{ElfFile64, FileHeader};
use object::{Endianness, elf};
use std::path::Path;
use trainer::runtime::cuda::{self, CudaProblem, DRIVER_LIBRARY, LibrarySet};
use trainer::runtime::{Device, Executor, OrtExecutor, RuntimeError};

/// glibc's `RTLD_NOLOAD` (Linux): succeed only if a library of that name is already loaded.
const RTLD_NOLOAD: i32 = 0x4;

/// The `DT_NEEDED` names of an ELF shared library.
fn needed(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    let file = ElfFile64::<Endianness>::parse(&*data).unwrap();
    let (endian, header) = (file.endian(), file.elf_header());
    let sections = header.sections(endian, &*data).unwrap();
    let (dynamic, link) = sections
        .dynamic(endian, &*data)
        .unwrap()
        .expect("a shared library has a dynamic section");
    let strings = sections.strings(endian, &*data, link).unwrap();
    dynamic
        .iter()
        .filter(|d| d.d_tag.get(endian) as u32 == elf::DT_NEEDED)
        .map(|d| {
            let name = strings.get(d.d_val.get(endian) as u32).unwrap();
            String::from_utf8(name.to_vec()).unwrap()
        })
        .collect()
}

/// Whether the loader resolves `name` as a `DT_NEEDED` entry of a library without a RUNPATH:
/// already loaded under that name, or found in the system's own paths.
fn resolvable(name: &str) -> bool {
    // SAFETY: only libraries the set or the system already provides, by name.
    unsafe {
        Library::open(Some(name), RTLD_NOW | RTLD_NOLOAD).is_ok()
            || Library::open(Some(name), RTLD_LAZY).is_ok()
    }
}

fn open(path: &Path) -> Result<(), String> {
    // SAFETY: libraries of the verified set.
    unsafe { Library::open(Some(path.to_str().unwrap()), RTLD_NOW | RTLD_GLOBAL) }
        .map(std::mem::forget)
        .map_err(|e| cuda::dl_error(&e))
}

#[test]
#[ignore = "needs `cargo xtask setup --cuda` (2 GB); `cargo xtask test --cuda` runs it"]
fn the_cuda_library_set_is_found_and_loads() {
    // SAFETY: this test binary runs this single test; no other thread reads the environment.
    unsafe { std::env::remove_var("ORT_DYLIB_PATH") };
    let set = LibrarySet::in_workspace().expect("`cargo xtask setup --cuda` has run");
    let driver = cuda::probe_driver();
    eprintln!("the driver: {driver:?}");

    set.preload().expect("the preload needs no driver");
    // Each is loaded under its name now: the provider's DT_NEEDED entries and the names it
    // opens match them.
    for name in CUDA_PRELOAD {
        // SAFETY: already loaded by the preload.
        let again = unsafe { Library::open(Some(name), RTLD_NOW | RTLD_NOLOAD) };
        assert!(again.is_ok(), "{name} is not loaded under its name");
    }

    let provider = set.dir().join(ONNX_RUNTIME_CUDA_PROVIDER);
    let provider_needs = needed(&provider);
    for name in [
        "libcublasLt.so.13",
        "libcublas.so.13",
        "libcurand.so.10",
        "libcudart.so.13",
    ] {
        assert!(
            provider_needs.iter().any(|n| n == name),
            "{provider_needs:?}"
        );
    }
    for name in CUDA_OTHER_FILES {
        let path = set.dir().join(name);
        let needs = needed(&path);
        // Every name ONNX Runtime's libraries need (they have no RUNPATH into the NVIDIA
        // folders) resolves now, but the driver's.
        if name.starts_with("libonnxruntime") {
            let unresolved: Vec<&String> = needs
                .iter()
                .filter(|n| *n != DRIVER_LIBRARY && !resolvable(n))
                .collect();
            assert!(unresolved.is_empty(), "{name} needs {unresolved:?}");
        }
        match (open(&path), &driver) {
            (Ok(()), _) => eprintln!("loaded {name}"),
            (Err(e), Err(_)) if needs.iter().any(|n| n == DRIVER_LIBRARY) => {
                assert!(e.contains(DRIVER_LIBRARY), "{name}: {e}");
                eprintln!("{name} needs the driver's {DRIVER_LIBRARY}, absent here: {e}");
            }
            (Err(e), _) => panic!("{name} does not load: {e}"),
        }
    }

    // The CUDA build is also the process's ONNX Runtime: loaded for a CUDA request, and
    // running sessions on its CPU provider when CUDA cannot be used.
    match driver {
        Ok(_) => {
            let gpu = OrtExecutor::new(Device::CudaOnly).expect("a GPU and the set: CUDA");
            assert_eq!(gpu.device(), Device::Cuda);
        }
        Err(problem) => {
            let err = OrtExecutor::new(Device::CudaOnly)
                .err()
                .expect("no usable driver: `cuda!` refuses");
            let RuntimeError::Cuda(why) = &err else {
                panic!("{err}")
            };
            assert_eq!(
                why.0,
                vec![problem.clone()],
                "only the driver is missing: {err}"
            );
            assert!(!matches!(problem, CudaProblem::NotSetUp { .. }));
            // SAFETY: as above.
            unsafe { std::env::set_var("ORT_DYLIB_PATH", set.onnxruntime()) };
            let cpu = OrtExecutor::new(Device::Cpu).expect("the CUDA build loads");
            assert_eq!(cpu.device(), Device::Cpu);
            assert!(cpu.describe().contains("cpu"));
            let cuda = OrtExecutor::new(Device::Cuda).expect("falls back");
            assert_eq!(cuda.device(), Device::Cpu);
        }
    }
}
