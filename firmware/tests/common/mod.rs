//! Random layers and models for the tests, built through the public builder.
#![allow(dead_code)]

use export::blob::{LayerSpec, ModelSpec, quantize_multiplier};
use firmware::format::{Storage, WeightKind};
use firmware::noise::SplitMix64;

pub fn rng(seed: u64) -> SplitMix64 {
    SplitMix64::new(seed)
}

/// Uniform integer in lo..=hi.
pub fn int(rng: &mut SplitMix64, lo: i32, hi: i32) -> i32 {
    lo + (rng.next_u32() % (hi - lo + 1) as u32) as i32
}

/// Image dimensions (both ≤ 32) whose product is `n`, if any.
pub fn dims(n: usize) -> Option<(usize, usize)> {
    (1..=32)
        .find_map(|w| (n.is_multiple_of(w) && n / w <= 32).then_some((n / w, w)))
        .filter(|&(w, _)| w <= 32)
}

/// A random layer whose outputs spread over the stored range (a real test of requantization,
/// not a wall of clamped values).
pub fn layer(
    rng: &mut SplitMix64,
    inputs: usize,
    outputs: usize,
    kind: WeightKind,
    output: Storage,
) -> LayerSpec {
    let wmax = if kind == WeightKind::Int4 { 7 } else { 127 };
    let wmin = if kind == WeightKind::Int4 { -8 } else { -127 };
    let weights = (0..inputs * outputs)
        .map(|_| int(rng, wmin, wmax) as i8)
        .collect();
    // Accumulator std ≈ √inputs · σ_w · σ_x; aim the output std at ~60 levels.
    let sigma_w = if kind == WeightKind::Int4 { 4.6 } else { 73.0 };
    let ratio = 60.0 / ((inputs as f64).sqrt() * sigma_w * 70.0);
    let mut multiplier = Vec::new();
    let mut shift = Vec::new();
    for _ in 0..outputs {
        let (m, s) = quantize_multiplier(ratio * (0.5 + (rng.next_u32() % 1000) as f64 / 1000.0));
        multiplier.push(m);
        shift.push(s);
    }
    let (clamp_min, clamp_max, output_offset) = match output {
        // 8-bit ReLUs, and 7-bit ones as `--weights fast` writes before int4 layers.
        Storage::U8 => (
            0,
            if rng.next_u32().is_multiple_of(2) {
                255
            } else {
                127
            },
            0,
        ),
        Storage::I8 => (-128, 127, int(rng, -10, 10) as i16),
    };
    LayerSpec {
        inputs,
        outputs,
        kind,
        weights,
        bias: (0..outputs).map(|_| int(rng, -20_000, 20_000)).collect(),
        multiplier,
        shift,
        output,
        output_offset,
        clamp_min,
        clamp_max,
    }
}

/// A model with the given layer sizes after the input; hidden layers ReLU (u8) unless
/// `signed_hidden`, the last layer int8.
pub fn model(
    seed: u64,
    latent: usize,
    classes: usize,
    widths: &[usize],
    kinds: &[WeightKind],
    signed_hidden: bool,
) -> ModelSpec {
    let mut rng = rng(seed);
    let mut inputs = latent + classes;
    let mut layers = Vec::new();
    for (k, &outputs) in widths.iter().enumerate() {
        let last = k + 1 == widths.len();
        let storage = if last || signed_hidden {
            Storage::I8
        } else {
            Storage::U8
        };
        let kind = kinds[k % kinds.len()];
        layers.push(layer(&mut rng, inputs, outputs, kind, storage));
        inputs = outputs;
    }
    let (width, height) = dims(inputs).expect("an image shape");
    let (noise_multiplier, noise_shift) = quantize_multiplier(127.0 / 4.0 / 4096.0);
    let mut lut = [0u8; 256];
    for (i, g) in lut.iter_mut().enumerate() {
        *g = (i as u8 as i8 as i32 + 128) as u8;
    }
    ModelSpec {
        latent,
        classes,
        one_hot_level: 32,
        noise_multiplier,
        noise_shift,
        width,
        height,
        layers,
        lut,
    }
}
