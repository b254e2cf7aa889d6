//! The quantizer against independent references: exact rational requantization, the float
//! model it was made from, and integer arithmetic done by hand.

use export::blob::{LayerSpec, ModelSpec, quantize_multiplier};
use export::float_model::{FloatGenerator, Output};
use export::fold::Linear;
use export::quantize::{
    QuantError, activation_max, calibrate, calibration_inputs, quantize, quantize_input, to_blob,
    weight_kinds,
};
use firmware::engine::{Kernel, forward, requantize};
use firmware::format::{Model, Storage, WeightKind};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `⌊acc · m / 2^t + 1/2⌋` as an exact rational: `⌊(2·acc·m + 2^t) / 2^(t+1)⌋`.
fn rational_requant(acc: i32, m: i32, shift: i8) -> i64 {
    let t = 31 - shift as i32;
    let num = 2 * acc as i128 * m as i128 + (1i128 << t);
    num.div_euclid(1i128 << (t + 1)) as i64
}

proptest! {
    #[test]
    fn requantize_matches_exact_rational_arithmetic(acc in -(1i32 << 24)..(1i32 << 24), real in 1e-6f64..0.99) {
        let (m, s) = quantize_multiplier(real);
        prop_assert_eq!(requantize(acc, m, s) as i64, rational_requant(acc, m, s));
        // And the Q31 multiplier is within one part in 2^30 of the real ratio.
        let approx = m as f64 * 2f64.powi(s as i32 - 31);
        prop_assert!((approx - real).abs() <= real * 2f64.powi(-30));
    }
}

#[test]
fn requantize_rounds_halves_up_like_the_reference() {
    // m · 2^(s−31) = 1/2 exactly: odd accumulators land on halves.
    let (m, s) = (1 << 30, 0);
    for acc in -9..=9 {
        let want = rational_requant(acc, m, s);
        assert_eq!(requantize(acc, m, s) as i64, want, "acc {acc}");
        assert_eq!(want, (acc as f64 / 2.0 + 0.5).floor() as i64);
    }
    assert_eq!(requantize(3, m, s), 2); // 1.5 → 2
    assert_eq!(requantize(-3, m, s), -1); // −1.5 → −1 (half up)
}

fn random_linear(rng: &mut ChaCha8Rng, inputs: usize, outputs: usize, gain: f32) -> Linear {
    let b = gain / (inputs as f32).sqrt();
    Linear {
        inputs,
        outputs,
        weight: (0..inputs * outputs)
            .map(|_| rng.random_range(-b..b))
            .collect(),
        bias: (0..outputs).map(|_| rng.random_range(-b..b)).collect(),
    }
}

fn random_generator(seed: u64, latent: usize, classes: usize, widths: &[usize]) -> FloatGenerator {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut layers = Vec::new();
    let mut prev = latent + classes;
    for &w in widths.iter().chain([784].iter()) {
        layers.push(random_linear(&mut rng, prev, w, 2.5));
        prev = w;
    }
    FloatGenerator {
        latent,
        classes,
        layers,
        output: Output::Sigmoid,
    }
}

fn psnr(a: &[f64], b: &[f64]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10()
}

/// The integer engine, run on the blob the quantizer writes, tracks the float model it came from.
#[test]
fn integer_engine_tracks_the_float_model() {
    for (kinds_int4, min_psnr) in [(vec![], 38.0), (vec![2usize], 28.0)] {
        let model = random_generator(3, 16, 10, &[32, 64, 128]);
        let calib = calibrate(&model, &calibration_inputs(&model, 500, 1));
        let kinds = weight_kinds(&model, &kinds_int4);
        let act_max = activation_max(&kinds, false);
        let spec = quantize(&model, &calib, &kinds, &act_max, 28, 28)
            .unwrap()
            .spec;
        let blob = to_blob(&spec).unwrap();
        let decoded = Model::from_bytes(&blob).unwrap();
        let (mut a, mut b, mut out) = (vec![0u8; 1024], vec![0u8; 1024], vec![0u8; 784]);
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let mut total = 0.0;
        for k in 0..50 {
            let z: Vec<f32> = (0..16).map(|_| rng.random_range(-2.5f32..2.5)).collect();
            let class = Some(k % 10);
            let x = quantize_input(&model, &z, class);
            forward(&decoded, Kernel::Reference, &x, &mut a, &mut b, &mut out).unwrap();
            let got: Vec<f64> = out.iter().map(|&s| decoded.grey(s) as f64).collect();
            let want: Vec<f64> = model
                .image(&model.input(&z, class))
                .iter()
                .map(|&p| p as f64 * 255.0)
                .collect();
            total += psnr(&got, &want);
        }
        let mean = total / 50.0;
        assert!(
            mean > min_psnr,
            "int4 layers {kinds_int4:?}: mean PSNR {mean:.1} dB"
        );
    }
}

/// One pixel of a one-layer model, computed by hand with the format's integer arithmetic.
#[test]
fn one_pixel_by_hand() {
    let model = FloatGenerator {
        latent: 2,
        classes: 0,
        layers: vec![Linear {
            inputs: 2,
            outputs: 1,
            weight: vec![0.5, -0.25],
            bias: vec![0.1],
        }],
        output: Output::Sigmoid,
    };
    let calib = export::quantize::Calibration {
        max_abs: vec![2.0],
        second_moments: Vec::new(),
    };
    let spec = quantize(&model, &calib, &[WeightKind::Int8], &[255], 1, 1)
        .unwrap()
        .spec;
    let l = &spec.layers[0];
    // Weight scale 0.5/127: weights 127 and −64 (−0.25·254 = −63.5 → −64, half away from zero).
    assert_eq!(l.weights, vec![127, -64]);
    // Bias at the accumulator scale (1/32)·(0.5/127): 0.1 / that = 812.8 → 813.
    assert_eq!(l.bias, vec![813]);
    let z = [1.0f32, 0.5];
    let x = quantize_input(&model, &z, None);
    assert_eq!(x, vec![32, 16]);
    let acc = 127 * 32 + (-64) * 16 + 813; // 3845
    let (m, s) = quantize_multiplier((1.0 / 32.0) * (0.5 / 127.0) / (2.0 / 127.0));
    assert_eq!((l.multiplier[0], l.shift[0]), (m, s));
    // The multiplier is (1/32)·(0.5/127) / (2/127) = 1/128: 3845/128 = 30.04 → 30.
    assert_eq!((m as f64) * 2f64.powi(s as i32 - 31), 1.0 / 128.0);
    let stored = requantize(acc, m, s).clamp(-127, 127);
    assert_eq!(stored, 30);
    let blob = to_blob(&spec).unwrap();
    let decoded = Model::from_bytes(&blob).unwrap();
    let (mut a, mut b, mut out) = ([0u8; 8], [0u8; 8], [0u8; 1]);
    forward(&decoded, Kernel::Fast, &x, &mut a, &mut b, &mut out).unwrap();
    assert_eq!(out[0] as i8 as i32, stored);
    // Grey: sigmoid(30 · 2/127) · 255 = sigmoid(0.4724) · 255 = 157.07 → 157.
    assert_eq!(decoded.grey(out[0]), 157);
}

#[test]
fn overflow_proof_rejects_a_crafted_layer_and_names_it() {
    // The proof is the firmware's validator, run on the written blob: layer 1 reads layer 0's
    // outputs (up to 255), so channel 1's bound is |bias| + 4·127·255, past 2³¹.
    let layer = |inputs: usize, outputs: usize, weight: i8, bias: Vec<i32>, output| LayerSpec {
        inputs,
        outputs,
        kind: WeightKind::Int8,
        weights: vec![weight; inputs * outputs],
        bias,
        multiplier: vec![1 << 30; outputs],
        shift: vec![0; outputs],
        output,
        output_offset: 0,
        clamp_min: if output == Storage::U8 { 0 } else { -127 },
        clamp_max: if output == Storage::U8 { 255 } else { 127 },
    };
    let (noise_multiplier, noise_shift) = quantize_multiplier(1.0 / 128.0);
    let spec = |last_bias: Vec<i32>| ModelSpec {
        latent: 4,
        classes: 0,
        one_hot_level: 0,
        noise_multiplier,
        noise_shift,
        width: 2,
        height: 1,
        layers: vec![
            layer(4, 4, 1, vec![0; 4], Storage::U8),
            layer(4, 2, 127, last_bias, Storage::I8),
        ],
        lut: [0; 256],
    };
    let err = to_blob(&spec(vec![0, i32::MAX - 1000])).unwrap_err();
    assert_eq!(
        err,
        QuantError::Overflow {
            layer: 1,
            channel: 1
        },
        "{err:?}"
    );
    assert!(err.to_string().contains("layer 1, channel 1"));
    // The same layer is fine once the bias leaves room.
    to_blob(&spec(vec![0, 1 << 20])).unwrap();
}
