//! Random generators of any shape, quantized by the one quantizer ([`crate::quantize`]) as a
//! trained generator is, so that the engine, the app, the simulator and the benchmarks can be
//! exercised before any model is trained, and checked against float arithmetic.

use crate::float_model::FloatGenerator;
use crate::fold::Linear;
use crate::quantize::{
    QuantError, Quantized, activation_max, calibrate, calibration_inputs, quantize, to_blob,
    weight_kinds,
};
use firmware::format::{MAX_SIDE, WeightKind};
use firmware::noise::SplitMix64;

fn uniform(rng: &mut SplitMix64) -> f32 {
    ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) as f32
}

/// A random float generator: `latent + classes` inputs, then layers of `widths` outputs;
/// He-uniform weights and small random biases, the same for the same `seed`.
pub fn random_generator(
    latent: usize,
    classes: usize,
    widths: &[usize],
    seed: u64,
) -> FloatGenerator {
    let mut rng = SplitMix64::new(seed);
    let mut inputs = latent + classes;
    let mut layers = Vec::new();
    for &outputs in widths {
        let bound = (6.0 / inputs as f32).sqrt();
        let weight = (0..inputs * outputs)
            .map(|_| (2.0 * uniform(&mut rng) - 1.0) * bound)
            .collect();
        let bias = (0..outputs)
            .map(|_| (2.0 * uniform(&mut rng) - 1.0) * 0.1)
            .collect();
        layers.push(Linear {
            inputs,
            outputs,
            weight,
            bias,
        });
        inputs = outputs;
    }
    FloatGenerator {
        latent,
        classes,
        layers,
        output: crate::float_model::Output::Sigmoid,
    }
}

/// The image a last layer of `pixels` outputs draws: square when it can be, else one row.
fn image_dims(pixels: usize) -> (usize, usize) {
    let side = (pixels as f64).sqrt().round() as usize;
    if side * side == pixels && side <= MAX_SIDE {
        (side, side)
    } else {
        (pixels, 1)
    }
}

/// Quantizes `model` as `mcugan export` does (8-bit activations), int4 for the layers listed in
/// `int4_layers` and int8 for the rest, calibrated on `calibration` noise draws.
pub fn quantize_random(
    model: &FloatGenerator,
    int4_layers: &[usize],
    calibration: usize,
) -> Result<Quantized, QuantError> {
    let kinds: Vec<WeightKind> = weight_kinds(model, int4_layers);
    let calib = calibrate(model, &calibration_inputs(model, calibration, 0xCA11B));
    let pixels = model.layers.last().map_or(0, |l| l.outputs);
    let (width, height) = image_dims(pixels);
    quantize(
        model,
        &calib,
        &kinds,
        &activation_max(&kinds, false),
        width,
        height,
    )
}

/// A random int8 model of the given widths (after the input) as blob bytes; for the simulator
/// and tests before a trained model exists. Written by [`to_blob`], as an export is.
pub fn random_model(
    seed: u64,
    latent: usize,
    classes: usize,
    widths: &[usize],
) -> Result<Vec<u8>, QuantError> {
    let model = random_generator(latent, classes, widths, seed);
    to_blob(&quantize_random(&model, &[], 64)?.spec)
}
