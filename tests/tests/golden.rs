//! The committed expected outputs of the host-side chain (see `mcugan_tests::golden`): the
//! noise the boards draw, and each committed model decoded, validated and run by the integer
//! engine for fixed seeds and digits. The board's own screens are pinned in the QEMU tests.

use anyhow::{Result, anyhow};
use firmware::app::generate;
use firmware::format::Model;
use firmware::noise::{Choice, SplitMix64, gaussian_q12};
use mcugan_tests::golden;
use sha2::{Digest, Sha256};
use std::fmt::Write;
use std::path::Path;

const SEEDS: u32 = 4;

#[test]
fn noise_matches_the_committed_draws() -> Result<()> {
    let mut out = String::new();
    for seed in [0u64, 1, 2, 0x6d63_7567_616e, u64::MAX] {
        let mut rng = SplitMix64::new(seed);
        let words: Vec<String> = (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect();
        writeln!(out, "splitmix64 seed {seed}: {}", words.join(" "))?;
        let mut rng = SplitMix64::new(seed);
        let normals: Vec<String> = (0..8).map(|_| gaussian_q12(&mut rng).to_string()).collect();
        writeln!(out, "gaussian_q12 seed {seed}: {}", normals.join(" "))?;
    }
    golden::text("noise.txt", &out)
}

/// Every digit (or the unconditional model's one draw) for seeds 0..SEEDS: a hash per image and
/// a sheet of them all, a row per seed.
fn check_model(name: &str) -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../models/{name}/model.bin"));
    let blob = std::fs::read(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let model = Model::from_bytes(&blob)
        .map_err(|e| anyhow!("{}: refused by the firmware: {e}", path.display()))?;
    let classes = u32::from(model.header.classes).max(1);
    let (w, h) = (model.header.width as usize, model.header.height as usize);
    let (mut a, mut b) = (vec![0u8; model.max_width()], vec![0u8; model.max_width()]);
    let mut hashes = format!(
        "{name}: {} bytes, {} layers, {} MACs per digit\n",
        blob.len(),
        model.layers().len(),
        model.macs()
    );
    let mut sheet = vec![0u8; (classes as usize * w) * (SEEDS as usize * h)];
    let stride = classes as usize * w;
    for seed in 0..SEEDS {
        for class in 0..classes {
            let choice = if model.header.classes > 0 {
                Choice::Digit(class as u8)
            } else {
                Choice::Any
            };
            let g = generate(&model, seed, choice, 0, &mut a, &mut b)
                .map_err(|e| anyhow!("seed {seed}, class {class}: {e}"))?;
            let mut grey = Vec::with_capacity(w * h);
            for y in 0..h {
                for x in 0..w {
                    let v = g.digit.grey(x, y);
                    grey.push(v);
                    sheet[(seed as usize * h + y) * stride + class as usize * w + x] = v;
                }
            }
            let hash = hex::encode(Sha256::digest(&grey));
            writeln!(hashes, "seed {seed} class {class}: {hash}")?;
        }
    }
    golden::text(&format!("engine-{name}.txt"), &hashes)?;
    golden::grey_image(
        &format!("engine-{name}.png"),
        stride as u32,
        (SEEDS as usize * h) as u32,
        &sheet,
    )
}

#[test]
fn the_committed_lm3s6965_model_draws_the_committed_digits() -> Result<()> {
    check_model("lm3s6965")
}

#[test]
fn the_committed_pico_model_draws_the_committed_digits() -> Result<()> {
    check_model("pico")
}
