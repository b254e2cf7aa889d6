//! CUDA without environment variables: checks the NVIDIA driver, finds the libraries that
//! `cargo xtask setup --cuda` put in the workspace, and loads them before ONNX Runtime's CUDA
//! provider does.
//!
//! The dynamic loader reads `LD_LIBRARY_PATH` once, at process start, so a process cannot point
//! it at the set-up folder itself. It can load each library by absolute path, dependencies
//! first: the provider's `DT_NEEDED` entries (and the names it opens at run time) then match
//! libraries already loaded. ONNX Runtime's Python package does the same (`preload_dlls`).

use checkpoint::workspace::{CUDA_OTHER_FILES, CUDA_PRELOAD, ONNX_RUNTIME_CUDA_DIR};
use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use thiserror::Error;

/// The oldest driver the CUDA 13 libraries run on, as `cuDriverGetVersion` reports it
/// (1000 × major + 10 × minor): CUDA 13.0, which NVIDIA's drivers 580 and newer support.
pub const MIN_DRIVER_VERSION: i32 = 13000;
/// The driver's library, which NVIDIA's driver installs and no wheel holds.
pub const DRIVER_LIBRARY: &str = "libcuda.so.1";

/// One reason CUDA cannot be used. Each is said once, with what to do about it.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CudaProblem {
    #[error(
        "no NVIDIA driver: {DRIVER_LIBRARY} cannot be loaded ({0}); CUDA needs an NVIDIA GPU \
         and its driver"
    )]
    NoDriver(String),
    #[error(
        "the NVIDIA driver is too old: it supports CUDA {} (cuDriverGetVersion {found}), the \
         CUDA 13 libraries need CUDA {} ({MIN_DRIVER_VERSION}, NVIDIA driver 580 or newer): \
         update the driver",
        cuda_version(*found),
        cuda_version(MIN_DRIVER_VERSION)
    )]
    DriverTooOld { found: i32 },
    #[error("no CUDA device: the NVIDIA driver (CUDA {}) finds no GPU", cuda_version(*driver))]
    NoDevice { driver: i32 },
    #[error("the NVIDIA driver fails: {call} returned {code} ({})", cu_result_name(*code))]
    DriverFailed { call: &'static str, code: i32 },
    #[error(
        "the CUDA libraries are not set up: {dir} has no {missing}; run `cargo xtask setup \
         --cuda` (it says what it downloads)"
    )]
    NotSetUp { dir: String, missing: String },
    #[error("{0}, needed for the CUDA libraries of `cargo xtask setup --cuda`")]
    NoWorkspace(String),
    #[error("cannot load {path}: {reason} (run `cargo xtask setup --cuda` again)")]
    Load { path: String, reason: String },
    #[error(
        "ORT_DYLIB_PATH={path} is not a CUDA build of ONNX Runtime ({reason}): unset it to use \
         the one `cargo xtask setup --cuda` fetches, or point it at onnxruntime-gpu's"
    )]
    NotCudaBuild { path: String, reason: String },
    #[error("ONNX Runtime's CUDA provider does not start: {0}")]
    Provider(String),
    #[error("this process loaded the CPU library {path} before CUDA was asked for")]
    CpuLibraryLoaded { path: String },
}

/// Why CUDA cannot be used: every problem found, driver first.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("CUDA is not available:{}", self.list())]
pub struct CudaUnavailable(pub Vec<CudaProblem>);

impl CudaUnavailable {
    /// The problems, one indented line each, each line after a newline.
    pub fn list(&self) -> String {
        self.0.iter().map(|p| format!("\n  - {p}")).collect()
    }
}

impl From<CudaProblem> for CudaUnavailable {
    fn from(p: CudaProblem) -> Self {
        CudaUnavailable(vec![p])
    }
}

/// `cuDriverGetVersion`'s number as CUDA writes it: 12080 is 12.8.
pub fn cuda_version(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// The `CUresult` names a user may meet here (cuda.h); others by number only.
fn cu_result_name(code: i32) -> &'static str {
    match code {
        3 => "CUDA_ERROR_NOT_INITIALIZED",
        35 => "CUDA_ERROR_INSUFFICIENT_DRIVER",
        100 => "CUDA_ERROR_NO_DEVICE",
        101 => "CUDA_ERROR_INVALID_DEVICE",
        304 => "CUDA_ERROR_OPERATING_SYSTEM",
        803 => "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH: the driver library and kernel module differ",
        804 => "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
        999 => "CUDA_ERROR_UNKNOWN",
        _ => "see CUresult in cuda.h",
    }
}

/// The loader's own words (`dlerror`), which libloading keeps as the error's source.
pub fn dl_error(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => source.to_string(),
        None => e.to_string(),
    }
}

const CUDA_SUCCESS: c_int = 0;
const CUDA_ERROR_NO_DEVICE: c_int = 100;

/// A usable driver: its CUDA version and how many devices it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Driver {
    pub version: i32,
    pub devices: i32,
}

/// The decision on what the driver reported: its `cuDriverGetVersion`, what `cuInit` returned
/// and `cuDeviceGetCount` (0 when `cuInit` failed). Pure, so each outcome is tested without
/// a GPU.
pub fn judge_driver(version: i32, init: i32, devices: i32) -> Result<Driver, CudaProblem> {
    if version < MIN_DRIVER_VERSION {
        return Err(CudaProblem::DriverTooOld { found: version });
    }
    match init {
        CUDA_SUCCESS if devices > 0 => Ok(Driver { version, devices }),
        CUDA_SUCCESS | CUDA_ERROR_NO_DEVICE => Err(CudaProblem::NoDevice { driver: version }),
        code => Err(CudaProblem::DriverFailed {
            call: "cuInit",
            code,
        }),
    }
}

/// Loads the driver's library and asks it, once per process; the library stays loaded (ONNX
/// Runtime's CUDA provider needs it too).
pub fn probe_driver() -> Result<Driver, CudaProblem> {
    static DRIVER: OnceLock<Result<Driver, CudaProblem>> = OnceLock::new();
    DRIVER.get_or_init(probe_driver_now).clone()
}

fn probe_driver_now() -> Result<Driver, CudaProblem> {
    // SAFETY: NVIDIA's driver library; its initialisers have no preconditions.
    let lib = unsafe { Library::open(Some(DRIVER_LIBRARY), RTLD_NOW | RTLD_GLOBAL) }
        .map_err(|e| CudaProblem::NoDriver(dl_error(&e)))?;
    type GetInt = unsafe extern "C" fn(*mut c_int) -> c_int;
    type Init = unsafe extern "C" fn(u32) -> c_int;
    let missing = |e: libloading::Error| CudaProblem::NoDriver(dl_error(&e));
    // SAFETY: the signatures are those of cuda.h's driver API (CUresult is a C enum, an int).
    let result = unsafe {
        let get_version = lib
            .get::<GetInt>(b"cuDriverGetVersion\0")
            .map_err(missing)?;
        let init = lib.get::<Init>(b"cuInit\0").map_err(missing)?;
        let count = lib.get::<GetInt>(b"cuDeviceGetCount\0").map_err(missing)?;
        let mut version = 0;
        let code = get_version(&mut version);
        if code != CUDA_SUCCESS {
            return Err(CudaProblem::DriverFailed {
                call: "cuDriverGetVersion",
                code,
            });
        }
        let init_code = init(0);
        let mut devices = 0;
        if init_code == CUDA_SUCCESS {
            let code = count(&mut devices);
            if code != CUDA_SUCCESS {
                return Err(CudaProblem::DriverFailed {
                    call: "cuDeviceGetCount",
                    code,
                });
            }
        }
        judge_driver(version, init_code, devices)
    };
    std::mem::forget(lib);
    result
}

/// The folder `cargo xtask setup --cuda` fills, checked to hold every file.
#[derive(Clone, Debug)]
pub struct LibrarySet {
    dir: PathBuf,
}

impl LibrarySet {
    /// The set in `dir`, or which file is missing.
    pub fn at(dir: &Path) -> Result<Self, CudaProblem> {
        for name in CUDA_PRELOAD.iter().chain(&CUDA_OTHER_FILES) {
            if !dir.join(name).is_file() {
                return Err(CudaProblem::NotSetUp {
                    dir: dir.display().to_string(),
                    missing: name.to_string(),
                });
            }
        }
        Ok(LibrarySet {
            dir: dir.to_path_buf(),
        })
    }

    /// The set in the workspace found at run time (see [`checkpoint::workspace::root`]).
    pub fn in_workspace() -> Result<Self, CudaProblem> {
        let root = checkpoint::workspace::root("the CUDA libraries")
            .map_err(|e| CudaProblem::NoWorkspace(e.to_string()))?;
        Self::at(&root.join(ONNX_RUNTIME_CUDA_DIR))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CUDA build of ONNX Runtime, for `ort` to load.
    pub fn onnxruntime(&self) -> PathBuf {
        self.dir.join(checkpoint::workspace::ONNX_RUNTIME_LIBRARY)
    }

    /// Loads [`CUDA_PRELOAD`] by absolute path, in order, with `RTLD_GLOBAL`; they stay loaded
    /// for the life of the process (the provider uses them until it exits). Needs no driver.
    pub fn preload(&self) -> Result<(), CudaProblem> {
        for name in CUDA_PRELOAD {
            let path = self.dir.join(name);
            let shown = path.display().to_string();
            let fail = |reason: String| CudaProblem::Load {
                path: shown.clone(),
                reason,
            };
            let text = path
                .to_str()
                .ok_or_else(|| fail("the path is not UTF-8".into()))?;
            // SAFETY: NVIDIA's libraries from the verified set; their initialisers only set up
            // their own state.
            let lib = unsafe { Library::open(Some(text), RTLD_NOW | RTLD_GLOBAL) }
                .map_err(|e| fail(dl_error(&e)))?;
            std::mem::forget(lib);
        }
        Ok(())
    }
}

/// Everything before the CUDA build of ONNX Runtime may load: a usable driver, the set-up
/// libraries (both checked, so that every missing piece is named at once), then the preload.
pub fn prepare() -> Result<LibrarySet, CudaUnavailable> {
    let driver = probe_driver();
    let set = LibrarySet::in_workspace();
    let problems: Vec<CudaProblem> = [driver.err(), set.as_ref().err().cloned()]
        .into_iter()
        .flatten()
        .collect();
    if !problems.is_empty() {
        return Err(CudaUnavailable(problems));
    }
    let set = set.expect("checked above");
    set.preload()?;
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_decision_names_the_version_found_and_the_one_needed() {
        let old = judge_driver(12080, 0, 1).unwrap_err();
        assert_eq!(old, CudaProblem::DriverTooOld { found: 12080 });
        let msg = old.to_string();
        assert!(
            msg.contains("CUDA 12.8") && msg.contains("12080") && msg.contains("CUDA 13.0"),
            "{msg}"
        );
        assert!(msg.contains("580"), "{msg}");
        // Too old wins over everything else the driver says.
        assert!(matches!(
            judge_driver(11040, 100, 0),
            Err(CudaProblem::DriverTooOld { found: 11040 })
        ));
    }

    #[test]
    fn the_driver_decision_tells_no_device_from_a_failing_driver() {
        for (init, devices) in [(0, 0), (CUDA_ERROR_NO_DEVICE, 0)] {
            let e = judge_driver(13000, init, devices).unwrap_err();
            assert_eq!(e, CudaProblem::NoDevice { driver: 13000 });
            assert!(e.to_string().contains("no CUDA device"), "{e}");
        }
        let e = judge_driver(13020, 999, 0).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("cuInit returned 999") && msg.contains("CUDA_ERROR_UNKNOWN"),
            "{msg}"
        );
        assert_eq!(
            judge_driver(13000, 0, 1),
            Ok(Driver {
                version: 13000,
                devices: 1
            })
        );
        assert_eq!(
            judge_driver(13020, 0, 8).map(|d| d.devices),
            Ok(8),
            "a newer driver is fine"
        );
    }

    #[test]
    fn every_problem_found_is_named_once_driver_first() {
        let all = CudaUnavailable(vec![
            CudaProblem::NoDriver("libcuda.so.1: cannot open shared object file".into()),
            CudaProblem::NotSetUp {
                dir: "/w/.cache/onnxruntime-cuda".into(),
                missing: "libcudart.so.13".into(),
            },
        ]);
        let msg = all.to_string();
        assert!(
            msg.starts_with("CUDA is not available:\n  - no NVIDIA driver"),
            "{msg}"
        );
        assert_eq!(msg.lines().count(), 3, "{msg}");
        assert_eq!(msg.matches("no NVIDIA driver").count(), 1, "{msg}");
        assert!(
            msg.contains("cargo xtask setup --cuda") && msg.contains("libcudart.so.13"),
            "{msg}"
        );
    }

    #[test]
    fn an_empty_folder_is_not_set_up_and_the_first_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = LibrarySet::at(dir.path()).unwrap_err();
        assert_eq!(
            e,
            CudaProblem::NotSetUp {
                dir: dir.path().display().to_string(),
                missing: CUDA_PRELOAD[0].into()
            }
        );
        // All files there but one: that one is named.
        for name in CUDA_PRELOAD.iter().chain(&CUDA_OTHER_FILES) {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let last = CUDA_OTHER_FILES[CUDA_OTHER_FILES.len() - 1];
        std::fs::remove_file(dir.path().join(last)).unwrap();
        let e = LibrarySet::at(dir.path()).unwrap_err().to_string();
        assert!(e.contains(last), "{e}");
        std::fs::write(dir.path().join(last), b"").unwrap();
        let set = LibrarySet::at(dir.path()).unwrap();
        // Empty files are found, but do not load: the error names the file.
        let e = set.preload().unwrap_err().to_string();
        assert!(
            e.contains(CUDA_PRELOAD[0]) && e.contains("setup --cuda"),
            "{e}"
        );
    }
}
