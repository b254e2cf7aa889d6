//! Error-compensating rounding judged on what it minimises, the layer's output error over its
//! inputs, against nearest rounding with the same scales.

use export::gptq::{round, second_moment};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// `count` inputs of width `n` that are correlated (mixtures of `n / 4` sources) and
/// non-negative, as ReLU outputs are, plus one input that never fires.
fn correlated_inputs(n: usize, count: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    let sources = n / 4;
    let mix: Vec<f32> = (0..n * sources)
        .map(|_| StandardNormal.sample(&mut *rng))
        .collect();
    (0..count)
        .map(|_| {
            let z: Vec<f32> = (0..sources)
                .map(|_| StandardNormal.sample(&mut *rng))
                .collect();
            (0..n)
                .map(|i| {
                    if i == n - 1 {
                        return 0.0;
                    }
                    let v: f32 = (0..sources).map(|s| mix[i * sources + s] * z[s]).sum();
                    v.max(0.0)
                })
                .collect()
        })
        .collect()
}

/// `Σ_samples Σ_rows ((w − scale · level) · x)²`.
fn output_error(w: &[f32], levels: &[i8], scales: &[f64], n: usize, xs: &[Vec<f32>]) -> f64 {
    let rows = scales.len();
    xs.iter()
        .map(|x| {
            (0..rows)
                .map(|o| {
                    let e: f64 = (0..n)
                        .map(|i| {
                            let k = o * n + i;
                            (w[k] as f64 - scales[o] * levels[k] as f64) * x[i] as f64
                        })
                        .sum();
                    e * e
                })
                .sum::<f64>()
        })
        .sum()
}

fn nearest(w: &[f32], scales: &[f64], n: usize, qmax: f64) -> Vec<i8> {
    w.iter()
        .enumerate()
        .map(|(k, &v)| (v as f64 / scales[k / n]).round().clamp(-qmax, qmax) as i8)
        .collect()
}

#[test]
fn int4_output_error_is_far_below_nearest_rounding_on_correlated_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (n, rows, qmax) = (48, 16, 7.0);
    let xs = correlated_inputs(n, 1500, &mut rng);
    let w: Vec<f32> = (0..n * rows)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let refs: Vec<&[f32]> = xs.iter().map(|x| x.as_slice()).collect();
    let h = second_moment(&refs, n);
    let r = round(&w, n, rows, &h, qmax);

    assert!(r.levels.iter().all(|&q| (-7..=7).contains(&q)));
    // The input that never fires carries no information: its weights are left at zero.
    assert!((0..rows).all(|o| r.levels[o * n + n - 1] == 0));

    let gptq = output_error(&w, &r.levels, &r.scales, n, &xs);
    let plain = output_error(&w, &nearest(&w, &r.scales, n, qmax), &r.scales, n, &xs);
    assert!(
        gptq < 0.5 * plain,
        "output error {gptq:.1} with error feedback vs {plain:.1} rounded to nearest"
    );
}

#[test]
fn with_uncorrelated_inputs_there_is_nothing_to_compensate() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (n, rows, qmax) = (20, 6, 7.0);
    let w: Vec<f32> = (0..n * rows)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    // E[x xᵀ] = I: each weight's error shows in the output alone, so nearest is optimal.
    let r = round(&w, n, rows, &DMatrix::identity(n, n), qmax);
    assert_eq!(r.levels, nearest(&w, &r.scales, n, qmax));
    // Each scale is the clip search's best: no larger than max |w| / 7, and not degenerate.
    for o in 0..rows {
        let max = w[o * n..(o + 1) * n]
            .iter()
            .fold(0f64, |m, &v| m.max(v.abs() as f64));
        assert!(r.scales[o] <= max / qmax + 1e-12 && r.scales[o] >= 0.3 * max / qmax);
    }
}
