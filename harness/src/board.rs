//! The firmware ELFs the tests boot, built here (release) from each board's folder once per
//! variant and test process; for the LM3S6965, `MCUGAN_LM3S_ELF` names a prebuilt one instead.

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSection, ObjectSymbol};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use boards::Board;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ has a parent")
        .to_path_buf()
}

/// A board crate's folder.
pub fn folder(board: &Board) -> PathBuf {
    root().join(board.folder)
}

/// The LM3S6965 board crate's folder.
pub fn board_dir() -> PathBuf {
    folder(&boards::LM3S6965)
}

/// Where `cargo build --release` in a board's folder leaves its ELF.
pub fn built_elf_path(board: &Board) -> PathBuf {
    folder(board)
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

/// Built ELFs, copied out of each board's target folder, by board and variant: one build at a
/// time, since every variant of a board shares that folder (a rebuild there only relinks the
/// firmware crate).
static BUILT: Mutex<Option<HashMap<(&'static str, Variant), PathBuf>>> = Mutex::new(None);

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

/// Builds the LM3S6965 firmware for `variant` (see [`build_elf`]).
pub fn elf_for(variant: &Variant) -> Result<PathBuf> {
    build_elf(&boards::LM3S6965, variant)
}

/// Builds `board`'s firmware for `variant` (or reuses this process's earlier build) and
/// returns a private copy of its ELF, safe from later builds of other variants.
pub fn build_elf(board: &'static Board, variant: &Variant) -> Result<PathBuf> {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    let key = (board.name, variant.clone());
    if let Some(elf) = built.get(&key) {
        return Ok(elf.clone());
    }
    build(board, variant)?;
    // Under the board's (git-ignored) target folder; written then renamed, so another test
    // process never sees half a file.
    let out = folder(board).join("target/e2e");
    std::fs::create_dir_all(&out)?;
    let copy = out.join(variant.file_name());
    let partial = out.join(format!("{}.{}", variant.file_name(), std::process::id()));
    let elf = built_elf_path(board);
    std::fs::copy(&elf, &partial).with_context(|| format!("cannot copy {}", elf.display()))?;
    std::fs::rename(&partial, &copy)?;
    built.insert(key, copy.clone());
    Ok(copy)
}

/// `cargo build --release` in the board folder (its own `.cargo/config.toml` picks the target),
/// with a clean environment: the outer cargo's target folder and flags must not leak in.
fn build(board: &Board, variant: &Variant) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let dir = folder(board);
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
        bail!(
            "building the {} firmware ({variant:?}) failed: {status}",
            board.name
        );
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
