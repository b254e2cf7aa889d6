//! The LM3S6965 firmware ELF the tests boot: `MCUGAN_LM3S_ELF` when set, otherwise built here
//! (release) from `firmware/boards/lm3s6965evb`, once per variant and test process.

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSection, ObjectSymbol};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ has a parent")
        .to_path_buf()
}

/// The board crate's folder.
pub fn board_dir() -> PathBuf {
    root().join(boards::LM3S6965.folder)
}

/// Where `cargo build --release` in the board folder leaves the ELF.
pub fn built_elf_path() -> PathBuf {
    let board = &boards::LM3S6965;
    board_dir()
        .join("target")
        .join(board.target)
        .join("release")
        .join(board.bin)
}

/// One build of the firmware: which model blob, which extra cargo features.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Variant {
    /// `MCUGAN_MODEL`; None for the board's default model.
    pub model: Option<PathBuf>,
    /// Features on top of the defaults (e.g. `panic-selftest`).
    pub features: Vec<&'static str>,
}

impl Variant {
    /// A file name for this variant's ELF.
    fn file_name(&self) -> String {
        if *self == Variant::default() {
            return "default.elf".into();
        }
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        format!("variant-{:016x}.elf", h.finish())
    }
}

/// Built ELFs, copied out of the board's target folder, by variant: one build at a time, since
/// every variant shares that folder (a rebuild there only relinks the firmware crate).
static BUILT: Mutex<Option<HashMap<Variant, PathBuf>>> = Mutex::new(None);

/// The firmware ELF as the board builds by default: `MCUGAN_LM3S_ELF` if set, else built.
pub fn default_elf() -> Result<PathBuf> {
    if let Some(elf) = std::env::var_os("MCUGAN_LM3S_ELF") {
        let elf = PathBuf::from(elf);
        if !elf.is_file() {
            bail!("MCUGAN_LM3S_ELF={} is not a file", elf.display());
        }
        return Ok(elf);
    }
    elf_for(&Variant::default())
}

/// Builds `variant` (or reuses this process's earlier build) and returns a private copy of its
/// ELF, safe from later builds of other variants.
pub fn elf_for(variant: &Variant) -> Result<PathBuf> {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(elf) = built.get(variant) {
        return Ok(elf.clone());
    }
    build(variant)?;
    // Under the board's (git-ignored) target folder; written then renamed, so another test
    // process never sees half a file.
    let out = board_dir().join("target/e2e");
    std::fs::create_dir_all(&out)?;
    let copy = out.join(variant.file_name());
    let partial = out.join(format!("{}.{}", variant.file_name(), std::process::id()));
    std::fs::copy(built_elf_path(), &partial)
        .with_context(|| format!("cannot copy {}", built_elf_path().display()))?;
    std::fs::rename(&partial, &copy)?;
    built.insert(variant.clone(), copy.clone());
    Ok(copy)
}

/// `cargo build --release` in the board folder (its own `.cargo/config.toml` picks the target),
/// with a clean environment: the outer cargo's target folder and flags must not leak in.
fn build(variant: &Variant) -> Result<()> {
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
    if let Some(path) = &variant.model {
        cmd.env("MCUGAN_MODEL", path);
    }
    if !variant.features.is_empty() {
        cmd.args(["--features", &variant.features.join(",")]);
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run cargo in {}", dir.display()))?;
    if !status.success() {
        bail!("building the LM3S6965 firmware ({variant:?}) failed: {status}");
    }
    Ok(())
}

/// The model blob built into a firmware ELF: the bytes of its `MCUGAN_MODEL_BLOB` static.
pub fn model_blob(elf: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(elf).with_context(|| format!("cannot read {}", elf.display()))?;
    let file = object::File::parse(&*data)?;
    let symbol = file
        .symbols()
        .find(|s| s.name().is_ok_and(|n| n.contains(boards::MODEL_SYMBOL)))
        .with_context(|| format!("no {} symbol in {}", boards::MODEL_SYMBOL, elf.display()))?;
    let (addr, size) = (symbol.address(), symbol.size());
    for section in file.sections() {
        let start = section.address();
        if (start..start + section.size()).contains(&addr) {
            let bytes = section.data()?;
            let from = (addr - start) as usize;
            return bytes
                .get(from..from + size as usize)
                .map(<[u8]>::to_vec)
                .context("the model blob runs past its section");
        }
    }
    bail!(
        "{} at {addr:#x} is in no section of {}",
        boards::MODEL_SYMBOL,
        elf.display()
    )
}
