//! Synthetic models (feature `std`): a random float generator of any shape, quantized the way
//! `export` quantizes a trained one, so the engine, the app, the simulator and the benchmark
//! can be exercised before any model is trained, and checked against float arithmetic.

use crate::builder::{LayerSpec, ModelSpec, quantize_multiplier};
use crate::format::{Storage, WeightKind};
use crate::noise::{Choice, SplitMix64, draw};
use std::vec;
use std::vec::Vec;

/// A float MLP: ReLU between layers, logits out (the sigmoid is the grey table).
#[derive(Clone, Debug)]
pub struct FloatMlp {
    pub latent: usize,
    pub classes: usize,
    /// Per layer: (inputs, outputs, row-major weights, bias).
    pub layers: Vec<(usize, usize, Vec<f64>, Vec<f64>)>,
}

fn uniform(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl FloatMlp {
    /// Random weights, uniform with He-like scale, small random biases.
    pub fn random(latent: usize, classes: usize, widths: &[usize], seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut inputs = latent + classes;
        let mut layers = Vec::new();
        for &outputs in widths {
            let bound = (6.0 / inputs as f64).sqrt();
            let w = (0..inputs * outputs)
                .map(|_| (2.0 * uniform(&mut rng) - 1.0) * bound)
                .collect();
            let b = (0..outputs)
                .map(|_| (2.0 * uniform(&mut rng) - 1.0) * 0.1)
                .collect();
            layers.push((inputs, outputs, w, b));
            inputs = outputs;
        }
        FloatMlp {
            latent,
            classes,
            layers,
        }
    }

    /// Every layer's output (after ReLU, except the last: logits).
    pub fn activations(&self, input: &[f64]) -> Vec<Vec<f64>> {
        let mut x = input.to_vec();
        let mut all = Vec::new();
        for (k, (n_in, n_out, w, b)) in self.layers.iter().enumerate() {
            let last = k + 1 == self.layers.len();
            let y: Vec<f64> = (0..*n_out)
                .map(|o| {
                    let v = b[o] + (0..*n_in).map(|i| w[o * n_in + i] * x[i]).sum::<f64>();
                    if last { v } else { v.max(0.0) }
                })
                .collect();
            all.push(y.clone());
            x = y;
        }
        all
    }
}

/// A quantized model with the scales that tie its integers to real values.
#[derive(Clone, Debug)]
pub struct Quantized {
    pub spec: ModelSpec,
    /// Real value of one unit of the int8 input.
    pub input_scale: f64,
    /// Per layer: real value of one unit of its output, and of each channel's weights.
    pub output_scales: Vec<f64>,
    pub weight_scales: Vec<Vec<f64>>,
}

/// Real value of one unit of Q12 noise.
const Q12: f64 = 1.0 / 4096.0;

/// Quantizes `mlp` as `export` does: per-channel symmetric weights (int8 or int4 per layer),
/// uint8 ReLU activations with scales calibrated on `calibration` seeded noise draws, int8
/// logits, a sigmoid grey table, noise clipped at ±4σ.
pub fn quantize(mlp: &FloatMlp, kinds: &[WeightKind], calibration: u32) -> Quantized {
    let input_scale = 4.0 / 127.0;
    let (noise_multiplier, noise_shift) = quantize_multiplier(Q12 / input_scale);
    let one_hot_level = (1.0 / input_scale).round().min(127.0) as i8;
    // Calibrate on the float model's activations over the device's own noise.
    let mut peaks = vec![0f64; mlp.layers.len()];
    for seed in 0..calibration {
        let input = real_input(mlp, seed, input_scale, one_hot_level);
        for (peak, layer) in peaks.iter_mut().zip(mlp.activations(&input)) {
            *peak = layer.iter().fold(*peak, |p, v| p.max(v.abs()));
        }
    }
    let mut x_scale = input_scale;
    let (mut layers, mut output_scales, mut weight_scales) = (Vec::new(), Vec::new(), Vec::new());
    for (k, ((n_in, n_out, w, b), peak)) in mlp.layers.iter().zip(&peaks).enumerate() {
        let last = k + 1 == mlp.layers.len();
        let kind = kinds.get(k).copied().unwrap_or(WeightKind::Int8);
        let levels = if kind == WeightKind::Int4 { 7.0 } else { 127.0 };
        let (output, top) = if last {
            (Storage::I8, 127.0)
        } else {
            (Storage::U8, 255.0)
        };
        let y_scale = (peak * 1.1).max(1e-6) / top;
        let mut spec = LayerSpec {
            inputs: *n_in,
            outputs: *n_out,
            kind,
            weights: Vec::new(),
            bias: Vec::new(),
            multiplier: Vec::new(),
            shift: Vec::new(),
            output,
            output_offset: 0,
            clamp_min: if last { -127 } else { 0 },
            clamp_max: top as i16,
        };
        let mut scales = Vec::new();
        for o in 0..*n_out {
            let row = &w[o * n_in..(o + 1) * n_in];
            let s_w = row.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-9) / levels;
            spec.weights.extend(
                row.iter()
                    .map(|v| (v / s_w).round().clamp(-levels, levels) as i8),
            );
            spec.bias.push((b[o] / (s_w * x_scale)).round() as i32);
            let (m, s) = quantize_multiplier(s_w * x_scale / y_scale);
            spec.multiplier.push(m);
            spec.shift.push(s);
            scales.push(s_w);
        }
        layers.push(spec);
        output_scales.push(y_scale);
        weight_scales.push(scales);
        x_scale = y_scale;
    }
    let mut lut = [0u8; 256];
    for (byte, grey) in lut.iter_mut().enumerate() {
        let logit = (byte as u8 as i8) as f64 * x_scale;
        *grey = (255.0 / (1.0 + (-logit).exp())).round() as u8;
    }
    let pixels = mlp.layers.last().map_or(0, |l| l.1);
    let side = (pixels as f64).sqrt().round() as usize;
    let (width, height) = if side * side == pixels {
        (side, side)
    } else {
        (pixels, 1)
    };
    Quantized {
        spec: ModelSpec {
            latent: mlp.latent,
            classes: mlp.classes,
            one_hot_level,
            noise_multiplier,
            noise_shift,
            width,
            height,
            layers,
            lut,
        },
        input_scale,
        output_scales,
        weight_scales,
    }
}

/// The real-valued input the float model sees for `seed` (class drawn as the app does).
fn real_input(mlp: &FloatMlp, seed: u32, input_scale: f64, one_hot_level: i8) -> Vec<f64> {
    let (mut z, mut dir) = (vec![0; mlp.latent], vec![0; mlp.latent]);
    let class = draw(seed, mlp.classes, Choice::Any, &mut z, &mut dir);
    let mut x: Vec<f64> = z.iter().map(|&v| v as f64 * Q12).collect();
    x.extend((0..mlp.classes).map(|c| {
        if class == Some(c as u8) {
            one_hot_level as f64 * input_scale
        } else {
            0.0
        }
    }));
    x
}

impl Quantized {
    /// The quantized model evaluated in floating point: integer weights and biases times their
    /// scales, activations left unrounded (clamped as the integers are). Per layer, real values.
    pub fn float_forward(&self, input: &[i8]) -> Vec<Vec<f64>> {
        let mut x: Vec<f64> = input.iter().map(|&v| v as f64 * self.input_scale).collect();
        let mut x_scale = self.input_scale;
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

/// A random model of the given widths (after the input) as blob bytes; for the simulator and
/// tests before a trained model exists. Panics only on a shape the format refuses.
pub fn random_model(seed: u64, latent: usize, classes: usize, widths: &[usize]) -> Vec<u8> {
    let mlp = FloatMlp::random(latent, classes, widths, seed);
    quantize(&mlp, &[], 64)
        .spec
        .to_bytes()
        .expect("synthetic models fit the format")
}
