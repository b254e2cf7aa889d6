//! The LM3S6965 firmware ELF the tests boot: `MCUGAN_LM3S_ELF` when set, otherwise built here
//! (release) from `firmware/boards/lm3s6965evb`, once per variant and test process.

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The board crate's folder.
pub fn board_dir() -> PathBuf {
    root().join("firmware/boards/lm3s6965evb")
}

/// Where `cargo build --release` in the board folder leaves the ELF.
pub fn built_elf_path() -> PathBuf {
    board_dir().join("target/thumbv7m-none-eabi/release/mcugan-lm3s6965evb")
}

/// Which model blob the firmware is built with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Model {
    /// The board's default (build.rs decides).
    Default,
    /// The blob in this file (`MCUGAN_MODEL`).
    File(PathBuf),
}

/// Built ELFs, copied out of the board's target folder, by model: one build at a time, since
/// every variant shares that folder.
static BUILT: Mutex<Option<HashMap<Model, PathBuf>>> = Mutex::new(None);

/// The firmware ELF for the default model: `MCUGAN_LM3S_ELF` if set, else built.
pub fn default_elf() -> Result<PathBuf> {
    if let Some(elf) = std::env::var_os("MCUGAN_LM3S_ELF") {
        let elf = PathBuf::from(elf);
        if !elf.is_file() {
            bail!("MCUGAN_LM3S_ELF={} is not a file", elf.display());
        }
        return Ok(elf);
    }
    elf_with(&Model::Default)
}

/// Builds the firmware with `model` (or reuses this process's earlier build) and returns a
/// private copy of its ELF, safe from later builds of other variants.
pub fn elf_with(model: &Model) -> Result<PathBuf> {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(elf) = built.get(model) {
        return Ok(elf.clone());
    }
    build(model)?;
    // Under the board's (git-ignored) target folder; written then renamed, so another test
    // process never sees half a file.
    let out = board_dir().join("target/e2e");
    std::fs::create_dir_all(&out)?;
    let name = match model {
        Model::Default => "default".to_string(),
        Model::File(path) => format!("model-{:016x}", path_hash(path)),
    };
    let copy = out.join(format!("{name}.elf"));
    let partial = out.join(format!("{name}.elf.{}", std::process::id()));
    std::fs::copy(built_elf_path(), &partial)
        .with_context(|| format!("cannot copy {}", built_elf_path().display()))?;
    std::fs::rename(&partial, &copy)?;
    built.insert(model.clone(), copy.clone());
    Ok(copy)
}

/// `cargo build --release` in the board folder (its own `.cargo/config.toml` picks the target),
/// with a clean environment: the outer cargo's target folder and flags must not leak in.
fn build(model: &Model) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let dir = board_dir();
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("MCUGAN_MODEL");
    if let Model::File(path) = model {
        cmd.env("MCUGAN_MODEL", path);
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run cargo in {}", dir.display()))?;
    if !status.success() {
        bail!("building the LM3S6965 firmware ({model:?}) failed: {status}");
    }
    Ok(())
}

/// A stable name for a model file's variant.
fn path_hash(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    h.finish()
}
