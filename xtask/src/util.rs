//! Small helpers: announcing steps, running commands with a clear error, hashing files.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

/// Prints one line saying what is happening, so a long set-up is never silent.
pub fn step(msg: &str) {
    println!("==> {msg}");
}

/// A `cargo` command in `dir`, with the same toolchain that runs xtask.
pub fn cargo_command(dir: &Path) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir);
    cmd
}

/// Runs `cargo` with the same toolchain that runs xtask.
pub fn cargo(dir: &Path, args: &[&str]) -> Result<()> {
    run(cargo_command(dir).args(args))
}

/// Runs a command, failing with the command line when it does not succeed.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Fails unless `path` has the expected SHA-256; the message names the file and both hashes.
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let got = sha256_file(path)?;
    if got != expected {
        bail!(
            "{}: SHA-256 mismatch: expected {expected}, got {got} (tampered or corrupt download)",
            path.display()
        );
    }
    Ok(())
}

/// True when `path` exists and has the expected SHA-256.
pub fn is_verified(path: &Path, expected: &str) -> bool {
    path.is_file() && sha256_file(path).is_ok_and(|h| h == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_check_accepts_the_right_file_and_rejects_a_tampered_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        // FIPS 180-2's test vector for "abc".
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        verify_sha256(&path, abc).unwrap();
        assert!(is_verified(&path, abc));
        std::fs::write(&path, b"abd").unwrap();
        let err = verify_sha256(&path, abc).unwrap_err().to_string();
        assert!(
            err.contains("mismatch") && err.contains(&path.display().to_string()),
            "{err}"
        );
        assert!(!is_verified(&path, abc));
        assert!(!is_verified(&dir.path().join("missing"), abc));
    }
}
