//! Float generator → integer-only model in the firmware's format (see `firmware::format`).
//!
//! The scheme (TFLite/CMSIS-NN conventions): weights symmetric per output channel (int8 in
//! ±127, or int4 in ±7); the noise input int8 with scale 1/32 (±3.97σ, and the one-hot's 1.0 is
//! exactly 32); ReLU outputs u8 with zero point 0 and a per-layer scale from calibration; the
//! logits int8, mapped to grey by a 256-entry sigmoid table. Accumulators are i32 from an i32
//! bias, requantized with a Q31 multiplier and shift.

use crate::float_model::{FloatGenerator, sigmoid};
use firmware::builder::{LayerSpec, ModelSpec, quantize_multiplier};
use firmware::format::{Storage, WeightKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use thiserror::Error;

/// Scale of the int8 noise input: 1/32, so the one-hot level 1.0 is exactly 32.
pub const INPUT_SCALE: f64 = 1.0 / 32.0;
/// The firmware draws noise as Q12 integers (value × 4096).
const NOISE_Q: f64 = 4096.0;
/// Logits beyond this saturate the sigmoid to within 1/255 of 0 or 1 (ln 255 ≈ 5.5): no
/// need to spend int8 resolution past it.
const MAX_LOGIT: f64 = 8.0;

#[derive(Debug, Error, PartialEq)]
pub enum QuantError {
    #[error(
        "layer {layer}, channel {channel}: the accumulator could reach {bound} (|bias| + Σ|w|·max|x|), which overflows i32; refusing to export"
    )]
    Overflow {
        layer: usize,
        channel: usize,
        bound: i64,
    },
    #[error("layer {layer}: {inputs} inputs follow a layer of {previous} outputs")]
    Shape {
        layer: usize,
        inputs: usize,
        previous: usize,
    },
    #[error("the generator has no layers")]
    Empty,
    #[error("the last layer has {outputs} outputs, expected {width}×{height}")]
    Image {
        outputs: usize,
        width: usize,
        height: usize,
    },
    #[error("layer {layer}: non-finite {what}")]
    NonFinite { layer: usize, what: &'static str },
    #[error("the blob builder refused the model: {0}")]
    Build(String),
}

/// Largest magnitude of each layer's output over the calibration inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    pub max_abs: Vec<f32>,
}

/// `count` calibration inputs: standard normal noise clipped to the input range, classes in
/// turn for a conditional model.
pub fn calibration_inputs(model: &FloatGenerator, count: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let limit = (127.0 * INPUT_SCALE) as f32;
    (0..count)
        .map(|k| {
            let z: Vec<f32> = (0..model.latent)
                .map(|_| {
                    let v: f32 = StandardNormal.sample(&mut rng);
                    v.clamp(-limit, limit)
                })
                .collect();
            let class = (model.classes > 0).then(|| k % model.classes);
            model.input(&z, class)
        })
        .collect()
}

/// Runs the float model over `inputs` and records each layer's output range.
pub fn calibrate(model: &FloatGenerator, inputs: &[Vec<f32>]) -> Calibration {
    let mut max_abs = vec![0f32; model.layers.len()];
    for x in inputs {
        for (m, layer) in max_abs.iter_mut().zip(model.activations(x)) {
            *m = layer.iter().fold(*m, |acc, v| acc.max(v.abs()));
        }
    }
    Calibration { max_abs }
}

/// The int8 input the firmware computes for float noise `z` (and class), as [`quantize_input`]
/// does on the device: `round(z · 32)` clamped to ±127, the one-hot at 32.
pub fn quantize_input(model: &FloatGenerator, z: &[f32], class: Option<usize>) -> Vec<i8> {
    model
        .input(z, class)
        .iter()
        .map(|&v| (v as f64 / INPUT_SCALE).round().clamp(-127.0, 127.0) as i8)
        .collect()
}

/// Per-layer weight precision: what `--weights int8|int4|mixed` chooses.
pub fn weight_kinds(model: &FloatGenerator, int4_layers: &[usize]) -> Vec<WeightKind> {
    (0..model.layers.len())
        .map(|k| {
            if int4_layers.contains(&k) {
                WeightKind::Int4
            } else {
                WeightKind::Int8
            }
        })
        .collect()
}

/// Quantizes `model` into the firmware's format, with activation scales from `calib`.
pub fn quantize(
    model: &FloatGenerator,
    calib: &Calibration,
    kinds: &[WeightKind],
    width: usize,
    height: usize,
) -> Result<ModelSpec, QuantError> {
    let last = model.layers.len().checked_sub(1).ok_or(QuantError::Empty)?;
    if model.layers[last].outputs != width * height {
        return Err(QuantError::Image {
            outputs: model.layers[last].outputs,
            width,
            height,
        });
    }
    let mut in_scale = INPUT_SCALE;
    let mut in_storage = Storage::I8;
    let mut previous = model.input_len();
    let mut layers = Vec::with_capacity(model.layers.len());
    for (k, layer) in model.layers.iter().enumerate() {
        if layer.inputs != previous {
            return Err(QuantError::Shape {
                layer: k,
                inputs: layer.inputs,
                previous,
            });
        }
        let is_last = k == last;
        let (out_scale, storage, clamp) = if is_last {
            let range = (calib.max_abs[k] as f64).clamp(1e-3, MAX_LOGIT);
            (range / 127.0, Storage::I8, (-127i16, 127i16))
        } else {
            (
                (calib.max_abs[k] as f64).max(1e-6) / 255.0,
                Storage::U8,
                (0, 255),
            )
        };
        let spec = quantize_dense(
            k,
            layer,
            in_scale,
            out_scale,
            kinds.get(k).copied().unwrap_or(WeightKind::Int8),
            storage,
            clamp,
        )?;
        check_overflow(k, &spec, in_storage)?;
        layers.push(spec);
        in_scale = out_scale;
        in_storage = storage;
        previous = layer.outputs;
    }
    let out_scale = in_scale;
    let mut lut = [0u8; 256];
    for (byte, grey) in lut.iter_mut().enumerate() {
        let logit = (byte as u8 as i8) as f64 * out_scale;
        *grey = (sigmoid(logit as f32) as f64 * 255.0).round() as u8;
    }
    let (noise_multiplier, noise_shift) = quantize_multiplier(1.0 / (NOISE_Q * INPUT_SCALE));
    Ok(ModelSpec {
        latent: model.latent,
        classes: model.classes,
        one_hot_level: (1.0 / INPUT_SCALE).round().min(127.0) as i8,
        noise_multiplier,
        noise_shift,
        width,
        height,
        layers,
        lut,
    })
}

/// One Linear layer: per-channel symmetric weights, bias at the accumulator's scale, and the
/// multiplier from accumulator to output scale.
fn quantize_dense(
    index: usize,
    layer: &crate::fold::Linear,
    in_scale: f64,
    out_scale: f64,
    kind: WeightKind,
    output: Storage,
    (clamp_min, clamp_max): (i16, i16),
) -> Result<LayerSpec, QuantError> {
    let qmax = match kind {
        WeightKind::Int8 => 127.0,
        WeightKind::Int4 => 7.0,
    };
    let (n_in, n_out) = (layer.inputs, layer.outputs);
    let mut weights = vec![0i8; n_in * n_out];
    let (mut bias, mut multiplier, mut shift) = (vec![0; n_out], vec![0; n_out], vec![0; n_out]);
    for o in 0..n_out {
        let row = &layer.weight[o * n_in..(o + 1) * n_in];
        if row.iter().any(|w| !w.is_finite()) || !layer.bias[o].is_finite() {
            return Err(QuantError::NonFinite {
                layer: index,
                what: "weight or bias",
            });
        }
        let max = row.iter().fold(0f64, |m, &w| m.max((w as f64).abs()));
        let w_scale = if max > 0.0 { max / qmax } else { 1.0 };
        for (q, &w) in weights[o * n_in..(o + 1) * n_in].iter_mut().zip(row) {
            *q = (w as f64 / w_scale).round().clamp(-qmax, qmax) as i8;
        }
        let acc_scale = in_scale * w_scale;
        let b = (layer.bias[o] as f64 / acc_scale).round();
        bias[o] = b.clamp(-(2f64.powi(31) - 1.0), 2f64.powi(31) - 1.0) as i32;
        (multiplier[o], shift[o]) = quantize_multiplier(acc_scale / out_scale);
    }
    Ok(LayerSpec {
        inputs: n_in,
        outputs: n_out,
        kind,
        weights,
        bias,
        multiplier,
        shift,
        output,
        output_offset: 0,
        clamp_min,
        clamp_max,
    })
}

/// Proves that no accumulator of `layer` can leave i32, whatever its input:
/// `|bias| + Σ|w| · max|x| < 2³¹` for every channel.
pub fn check_overflow(index: usize, layer: &LayerSpec, input: Storage) -> Result<(), QuantError> {
    let (lo, hi) = input.range();
    let max_x = lo.unsigned_abs().max(hi.unsigned_abs()) as i64;
    for o in 0..layer.outputs {
        let row = &layer.weights[o * layer.inputs..(o + 1) * layer.inputs];
        let bound = (layer.bias[o] as i64).abs()
            + row.iter().map(|&w| (w as i64).abs() * max_x).sum::<i64>();
        if bound >= 1i64 << 31 {
            return Err(QuantError::Overflow {
                layer: index,
                channel: o,
                bound,
            });
        }
    }
    Ok(())
}

/// Serializes a quantized model with the firmware's own builder (which decodes it again).
pub fn to_blob(spec: &ModelSpec) -> Result<Vec<u8>, QuantError> {
    spec.to_bytes()
        .map_err(|e| QuantError::Build(e.to_string()))
}
