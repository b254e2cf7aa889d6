//! Node.js as the harnesses run it (rp2040js for the Pico, playwright-core for the web page):
//! each package pinned by its folder's `package-lock.json`, with the version pinned and the one
//! installed, which set-up compares before it runs `npm ci` and the tests check before they
//! run; and a run bounded in wall-clock time.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Waits for `child` to exit; after `limit`, kills it and returns None.
pub fn wait_or_kill(child: &mut Child, limit: Duration) -> Result<Option<ExitStatus>> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The version of `package` that `dir/package-lock.json` pins, and the one installed in
/// `dir/node_modules` (None when missing).
pub fn package_versions(dir: &Path, package: &str) -> Result<(String, Option<String>)> {
    let lock_path = dir.join("package-lock.json");
    let lock: Value = serde_json::from_str(
        &std::fs::read_to_string(&lock_path)
            .with_context(|| format!("cannot read {}", lock_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", lock_path.display()))?;
    let pinned = lock["packages"][format!("node_modules/{package}")]["version"]
        .as_str()
        .with_context(|| format!("{} pins no {package}", lock_path.display()))?
        .to_owned();
    let installed =
        std::fs::read_to_string(dir.join("node_modules").join(package).join("package.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|json| json["version"].as_str().map(str::to_owned));
    Ok((pinned, installed))
}
