//! Float generator → integer-only model in the firmware's format (see `firmware::format`).
//!
//! The scheme (TFLite/CMSIS-NN conventions): weights symmetric per output channel (int8 in
//! ±127, or int4 in ±7); the noise input int8 with scale 1/32 (±3.97σ, and the one-hot's 1.0 is
//! exactly 32); ReLU outputs u8 with zero point 0 and a per-layer scale from calibration; the
//! logits int8, mapped to grey by a 256-entry table of the output function. Accumulators are i32 from an i32
//! bias, requantized with a Q31 multiplier and shift.

use crate::blob::{BuildError, LayerSpec, ModelSpec, quantize_multiplier};
use crate::float_model::FloatGenerator;
use crate::gptq;
use firmware::format::{Storage, WeightKind};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use thiserror::Error;

/// Scale of the int8 noise input: 1/32, so the one-hot level 1.0 is exactly 32.
pub const INPUT_SCALE: f64 = 1.0 / 32.0;
/// The firmware draws noise as Q12 integers (value × 4096).
const NOISE_Q: f64 = 4096.0;

#[derive(Debug, Error, PartialEq)]
pub enum QuantError {
    #[error(
        "layer {layer}, channel {channel}: the accumulator could leave i32 (|bias| + Σ|w|·max|x| ≥ 2³¹); refusing to export"
    )]
    Overflow { layer: usize, channel: usize },
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

/// What the calibration inputs showed of each layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// Largest magnitude of each layer's output.
    pub max_abs: Vec<f32>,
    /// `E[x xᵀ]` of each layer's input, for the int4 layers' error-compensating rounding
    /// ([`crate::gptq`]); a layer without one is rounded to nearest.
    pub second_moments: Vec<DMatrix<f64>>,
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

/// Runs the float model over `inputs` and records each layer's output range and input second
/// moment.
pub fn calibrate(model: &FloatGenerator, inputs: &[Vec<f32>]) -> Calibration {
    let mut max_abs = vec![0f32; model.layers.len()];
    let activations: Vec<Vec<Vec<f32>>> = inputs.iter().map(|x| model.activations(x)).collect();
    for outs in &activations {
        for (m, layer) in max_abs.iter_mut().zip(outs) {
            *m = layer.iter().fold(*m, |acc, v| acc.max(v.abs()));
        }
    }
    let second_moments = model
        .layers
        .iter()
        .enumerate()
        .map(|(k, layer)| {
            let xs: Vec<&[f32]> = inputs
                .iter()
                .zip(&activations)
                .map(|(x, outs)| if k == 0 { x.as_slice() } else { &outs[k - 1] })
                .collect();
            gptq::second_moment(&xs, layer.inputs)
        })
        .collect();
    Calibration {
        max_abs,
        second_moments,
    }
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

/// Per-layer weight precision: int4 for `int4_layers`, int8 for the rest.
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

/// The largest stored value of each ReLU layer's output: 255 (8 bits), or 127 where `narrow`
/// and an int4 layer reads it. The int4 kernel drains its 16-bit lanes when the activations
/// since the last drain could carry (see `firmware::engine`), so halving them halves the drains
/// and zeroes more of the smallest; the default model loses 0.2 dB PSNR for 3% fewer
/// instructions.
pub fn activation_max(kinds: &[WeightKind], narrow: bool) -> Vec<u8> {
    (0..kinds.len())
        .map(|k| match kinds.get(k + 1) {
            Some(WeightKind::Int4) if narrow => 127,
            _ => 255,
        })
        .collect()
}

/// A quantized model with the scales that tie its integers to real values.
#[derive(Clone, Debug)]
pub struct Quantized {
    pub spec: ModelSpec,
    /// Per layer: real value of one unit of its output, and of each channel's weights.
    pub output_scales: Vec<f64>,
    pub weight_scales: Vec<Vec<f64>>,
}

impl Quantized {
    /// The quantized model evaluated in floating point: integer weights and biases times their
    /// scales, activations left unrounded (clamped as the integers are). Per layer, real values;
    /// the integer engine should differ from it by rounding only.
    pub fn float_forward(&self, input: &[i8]) -> Vec<Vec<f64>> {
        let mut x: Vec<f64> = input.iter().map(|&v| v as f64 * INPUT_SCALE).collect();
        let mut x_scale = INPUT_SCALE;
        let mut all = Vec::new();
        for (k, l) in self.spec.layers.iter().enumerate() {
            let y_scale = self.output_scales[k];
            let y: Vec<f64> = (0..l.outputs)
                .map(|o| {
                    let s_w = self.weight_scales[k][o];
                    let dot: f64 = (0..l.inputs)
                        .map(|i| l.weights[o * l.inputs + i] as f64 * s_w * x[i])
                        .sum();
                    let v = dot + l.bias[o] as f64 * s_w * x_scale;
                    v.clamp(l.clamp_min as f64 * y_scale, l.clamp_max as f64 * y_scale)
                })
                .collect();
            all.push(y.clone());
            x = y;
            x_scale = y_scale;
        }
        all
    }
}

/// Quantizes `model` into the firmware's format, with activation scales from `calib`: weights
/// as `kinds` says, each ReLU output stored in `0..=activation_max[k]` (see [`activation_max`]).
/// Whether the accumulators can overflow is the firmware's validator's to say, when the blob
/// is written ([`to_blob`]).
pub fn quantize(
    model: &FloatGenerator,
    calib: &Calibration,
    kinds: &[WeightKind],
    activation_max: &[u8],
    width: usize,
    height: usize,
) -> Result<Quantized, QuantError> {
    let last = model.layers.len().checked_sub(1).ok_or(QuantError::Empty)?;
    if model.layers[last].outputs != width * height {
        return Err(QuantError::Image {
            outputs: model.layers[last].outputs,
            width,
            height,
        });
    }
    let mut in_scale = INPUT_SCALE;
    let mut previous = model.input_len();
    let mut layers = Vec::with_capacity(model.layers.len());
    let (mut output_scales, mut weight_scales) = (Vec::new(), Vec::new());
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
            let range = (calib.max_abs[k] as f64).clamp(1e-3, model.output.saturation());
            (range / 127.0, Storage::I8, (-127i16, 127i16))
        } else {
            let levels = activation_max.get(k).copied().unwrap_or(u8::MAX);
            (
                (calib.max_abs[k] as f64).max(1e-6) / levels as f64,
                Storage::U8,
                (0, levels as i16),
            )
        };
        let (spec, scales) = quantize_dense(
            k,
            layer,
            calib.second_moments.get(k),
            (in_scale, out_scale),
            kinds.get(k).copied().unwrap_or(WeightKind::Int8),
            storage,
            clamp,
        )?;
        layers.push(spec);
        output_scales.push(out_scale);
        weight_scales.push(scales);
        in_scale = out_scale;
        previous = layer.outputs;
    }
    let out_scale = in_scale;
    let mut lut = [0u8; 256];
    for (byte, grey) in lut.iter_mut().enumerate() {
        let logit = (byte as u8 as i8) as f64 * out_scale;
        *grey = (model.output.pixel(logit as f32) as f64 * 255.0).round() as u8;
    }
    let (noise_multiplier, noise_shift) = quantize_multiplier(1.0 / (NOISE_Q * INPUT_SCALE));
    Ok(Quantized {
        spec: ModelSpec {
            latent: model.latent,
            classes: model.classes,
            one_hot_level: (1.0 / INPUT_SCALE).round().min(127.0) as i8,
            noise_multiplier,
            noise_shift,
            width,
            height,
            layers,
            lut,
        },
        output_scales,
        weight_scales,
    })
}

/// One Linear layer: per-channel symmetric weights, bias at the accumulator's scale, and the
/// multiplier from accumulator to output scale; with each channel's weight scale.
fn quantize_dense(
    index: usize,
    layer: &crate::fold::Linear,
    second_moment: Option<&DMatrix<f64>>,
    (in_scale, out_scale): (f64, f64),
    kind: WeightKind,
    output: Storage,
    (clamp_min, clamp_max): (i16, i16),
) -> Result<(LayerSpec, Vec<f64>), QuantError> {
    let qmax = match kind {
        WeightKind::Int8 => 127.0,
        WeightKind::Int4 => 7.0,
    };
    let (n_in, n_out) = (layer.inputs, layer.outputs);
    let mut weights = vec![0i8; n_in * n_out];
    let (mut bias, mut multiplier, mut shift) = (vec![0; n_out], vec![0; n_out], vec![0; n_out]);
    let mut scales = vec![0f64; n_out];
    if layer
        .weight
        .iter()
        .chain(&layer.bias)
        .any(|w| !w.is_finite())
    {
        return Err(QuantError::NonFinite {
            layer: index,
            what: "weight or bias",
        });
    }
    // Int4 keeps too little of a row for nearest rounding; int8 stays the plain scheme.
    let rounded = match (kind, second_moment) {
        // Without calibration data (an all-zero `H`) there is nothing to compensate with.
        (WeightKind::Int4, Some(h)) if h.trace() > 0.0 => {
            Some(gptq::round(&layer.weight, n_in, n_out, h, qmax))
        }
        _ => None,
    };
    for o in 0..n_out {
        let row = &layer.weight[o * n_in..(o + 1) * n_in];
        let w_scale = match &rounded {
            Some(r) => {
                weights[o * n_in..(o + 1) * n_in]
                    .copy_from_slice(&r.levels[o * n_in..(o + 1) * n_in]);
                r.scales[o]
            }
            None => {
                let max = row.iter().fold(0f64, |m, &w| m.max((w as f64).abs()));
                let w_scale = if max > 0.0 { max / qmax } else { 1.0 };
                for (q, &w) in weights[o * n_in..(o + 1) * n_in].iter_mut().zip(row) {
                    *q = (w as f64 / w_scale).round().clamp(-qmax, qmax) as i8;
                }
                w_scale
            }
        };
        scales[o] = w_scale;
        let acc_scale = in_scale * w_scale;
        let b = (layer.bias[o] as f64 / acc_scale).round();
        bias[o] = b.clamp(-(2f64.powi(31) - 1.0), 2f64.powi(31) - 1.0) as i32;
        (multiplier[o], shift[o]) = quantize_multiplier(acc_scale / out_scale);
    }
    let spec = LayerSpec {
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
    };
    Ok((spec, scales))
}

/// Serializes a quantized model and decodes it again with the firmware's validator, which is
/// the overflow proof: a channel whose accumulator could leave i32 is refused by name.
pub fn to_blob(spec: &ModelSpec) -> Result<Vec<u8>, QuantError> {
    spec.to_bytes().map_err(|e| match e {
        BuildError::Rejected(firmware::format::Error::Overflow { layer, channel }) => {
            QuantError::Overflow {
                layer: layer as usize,
                channel: channel as usize,
            }
        }
        e => QuantError::Build(e.to_string()),
    })
}
