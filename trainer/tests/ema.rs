//! The generator's moving average: after each step it equals the average computed by hand
//! from the trained tensors, and it is what generation uses; and the learning-rate scale a
//! schedule sets (`ort_vs_tract` checks that the
//! exported model equals generation); and a step at a batch size other than the configured one.

use checkpoint::Conditioning;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer::gan::{GanConfig, GanTrainer};
use trainer::optim::Adam;
use trainer::runtime::TractExecutor;

fn small(ema: f64) -> GanConfig {
    GanConfig {
        conditioning: Conditioning::Projection,
        aux_weight: 1.0,
        real_target: 0.9,
        z_dim: 8,
        classes: Some(10),
        g_widths: vec![16, 32],
        d_widths: vec![32, 16],
        image_dim: 784,
        batch: 16,
        g_adam: Adam::new(2e-3, 0.5, 0.999),
        d_adam: Adam::new(2e-3, 0.5, 0.999),
        leaky_slope: 0.2,
        ema,
        seed: 7,
    }
}

fn batch(rng: &mut ChaCha8Rng, n: usize) -> (Vec<f32>, Vec<u8>) {
    let px = (0..n * 784).map(|_| rng.random_range(0.0..1.0)).collect();
    let labels = (0..n).map(|_| rng.random_range(0..10u8)).collect();
    (px, labels)
}

/// One generator tensor by name.
fn get<'a>(tensors: &'a [NamedTensor], name: &str) -> &'a [f64] {
    &tensors.iter().find(|t| t.0 == name).unwrap().1
}

type NamedTensor = (String, Vec<f64>);

fn as_f64(tensors: Vec<trainer::NamedTensor>) -> Vec<NamedTensor> {
    tensors
        .into_iter()
        .map(|t| (t.name, t.data.into_iter().map(|v| v as f64).collect()))
        .collect()
}

/// The running statistics the averaged generator's training-mode forward pass on `z`
/// leaves, computed by hand in f64: per hidden block, the batch mean and the unbiased variance
/// of the Linear output, mixed into the old statistics with momentum 0.1.
fn measured_statistics(
    cfg: &GanConfig,
    avg: &[NamedTensor],
    z: &[f32],
    labels: &[u8],
) -> Vec<(String, Vec<f64>)> {
    let n = cfg.batch;
    let k = cfg.classes.unwrap();
    let mut x: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut row: Vec<f64> = z[i * cfg.z_dim..(i + 1) * cfg.z_dim]
                .iter()
                .map(|&v| v as f64)
                .collect();
            row.extend((0..k).map(|c| if c == labels[i] as usize { 1.0 } else { 0.0 }));
            row
        })
        .collect();
    let mut out = Vec::new();
    for (b, &w) in cfg.g_widths.iter().enumerate() {
        let weight = get(avg, &format!("g.block{b}.linear.weight"));
        let bias = get(avg, &format!("g.block{b}.linear.bias"));
        let inputs = x[0].len();
        let h: Vec<Vec<f64>> = x
            .iter()
            .map(|row| {
                (0..w)
                    .map(|o| {
                        bias[o]
                            + (0..inputs)
                                .map(|i| weight[o * inputs + i] * row[i])
                                .sum::<f64>()
                    })
                    .collect()
            })
            .collect();
        let mean: Vec<f64> = (0..w)
            .map(|o| h.iter().map(|r| r[o]).sum::<f64>() / n as f64)
            .collect();
        let var: Vec<f64> = (0..w)
            .map(|o| h.iter().map(|r| (r[o] - mean[o]).powi(2)).sum::<f64>() / n as f64)
            .collect();
        let bn = format!("g.block{b}.bn");
        let (gamma, beta) = (
            get(avg, &format!("{bn}.weight")),
            get(avg, &format!("{bn}.bias")),
        );
        let (rm, rv) = (
            get(avg, &format!("{bn}.running_mean")),
            get(avg, &format!("{bn}.running_var")),
        );
        let unbias = n as f64 / (n as f64 - 1.0);
        out.push((
            format!("{bn}.running_mean"),
            (0..w).map(|o| 0.9 * rm[o] + 0.1 * mean[o]).collect(),
        ));
        out.push((
            format!("{bn}.running_var"),
            (0..w)
                .map(|o| 0.9 * rv[o] + 0.1 * var[o] * unbias)
                .collect(),
        ));
        x = h
            .iter()
            .map(|r| {
                (0..w)
                    .map(|o| {
                        let y = gamma[o] * (r[o] - mean[o]) / (var[o] + 1e-5).sqrt() + beta[o];
                        y.max(0.0)
                    })
                    .collect()
            })
            .collect();
    }
    out
}

#[test]
fn the_average_equals_a_hand_computation_over_steps() {
    // β = 0.3: steps 1 and 2 take the warm-up decay (1 + t)/(10 + t) (0.18, 0.25), later
    // steps β itself, so both branches of the minimum are checked.
    let beta = 0.3;
    let cfg = small(beta);
    let mut gan = GanTrainer::with_executor(cfg.clone(), Box::new(TractExecutor::new())).unwrap();
    let start = gan.trained_generator_state().unwrap();
    assert_eq!(
        gan.generator_state().unwrap(),
        start,
        "the average starts as the initial tensors"
    );
    let mut hand = as_f64(start);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for t in 1..=6u32 {
        let (x, y) = batch(&mut rng, cfg.batch);
        let (zd, zg) = (gan.draw_noise(cfg.batch), gan.draw_noise(cfg.batch));
        gan.step_with_noise(&x, &y, &zd, &zg).unwrap();
        let t = t as f64;
        let d = beta.min((1.0 + t) / (10.0 + t));
        let trained = as_f64(gan.trained_generator_state().unwrap());
        // Parameters: the moving average of the trained values.
        for ((name, avg), (_, now)) in hand.iter_mut().zip(&trained) {
            if !name.contains("running_") {
                for (a, &p) in avg.iter_mut().zip(now) {
                    *a = d * *a + (1.0 - d) * p;
                }
            }
        }
        // Statistics: measured on the averaged parameters with G's noise and the batch's labels.
        for (name, v) in measured_statistics(&cfg, &hand, &zg, &y) {
            hand.iter_mut().find(|(n, _)| *n == name).unwrap().1 = v;
        }
        let kept = as_f64(gan.generator_state().unwrap());
        for (((name, k), (_, h)), (_, now)) in kept.iter().zip(&hand).zip(&trained) {
            for (i, (&a, &b)) in k.iter().zip(h).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "step {t}: {name}[{i}] is {a}, by hand {b}"
                );
            }
            assert_ne!(
                k, now,
                "step {t}: {name}'s average equals the trained tensor"
            );
        }
    }
}

#[test]
fn generation_uses_the_average() {
    let cfg = small(0.5);
    let mut gan = GanTrainer::with_executor(cfg.clone(), Box::new(TractExecutor::new())).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for _ in 0..4 {
        let (x, y) = batch(&mut rng, cfg.batch);
        gan.step(&x, &y).unwrap();
    }
    let z = gan.draw_noise(4);
    let labels = [0u8, 3, 5, 9];
    let sampled = gan.generate(&z, &labels).unwrap();

    // The same tensors in a trainer without an average generate the same images...
    let plain = GanConfig { ema: 0.0, ..cfg };
    let mut other =
        GanTrainer::with_executor(plain.clone(), Box::new(TractExecutor::new())).unwrap();
    // `other`'s state with its generator tensors replaced by `generator`'s.
    let with = |other: &GanTrainer, generator: Vec<trainer::NamedTensor>| {
        let mut state = other.state().unwrap();
        for g in generator {
            let slot = state.iter_mut().find(|t| t.name == g.name).unwrap();
            *slot = g;
        }
        state
    };
    other
        .load_state(&with(&other, gan.generator_state().unwrap()))
        .unwrap();
    assert_eq!(other.generate(&z, &labels).unwrap(), sampled);
    // ...which the trained tensors do not.
    other
        .load_state(&with(&other, gan.trained_generator_state().unwrap()))
        .unwrap();
    assert_ne!(other.generate(&z, &labels).unwrap(), sampled);
}

#[test]
fn a_learning_rate_scale_scales_the_first_adam_step_exactly() {
    // From the same state, Adam's first update is lr · m̂ / (√v̂ + ε) = lr · sign-like
    // ratio: a scaled learning rate scales every parameter's move by the same factor.
    let cfg = small(0.0);
    let (mut a, mut b) = (
        GanTrainer::with_executor(cfg.clone(), Box::new(TractExecutor::new())).unwrap(),
        GanTrainer::with_executor(cfg.clone(), Box::new(TractExecutor::new())).unwrap(),
    );
    assert!(b.set_lr_scale(0.0).is_err() && b.set_lr_scale(1.5).is_err());
    b.set_lr_scale(0.25).unwrap();
    // The discriminator steps first, from the same state in both: its gradients are equal.
    let discriminator = |g: &GanTrainer| {
        as_f64(g.state().unwrap())
            .into_iter()
            .filter(|(n, _)| n.starts_with("d.") && !n.contains("adam"))
            .collect::<Vec<_>>()
    };
    let start = discriminator(&a);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (x, y) = batch(&mut rng, cfg.batch);
    let (zd, zg) = (a.draw_noise(cfg.batch), a.draw_noise(cfg.batch));
    a.step_with_noise(&x, &y, &zd, &zg).unwrap();
    b.step_with_noise(&x, &y, &zd, &zg).unwrap();
    let (da_all, db_all) = (discriminator(&a), discriminator(&b));
    let mut checked = 0;
    for (((name, p0), (_, pa)), (_, pb)) in start.iter().zip(&da_all).zip(&db_all) {
        for i in 0..p0.len() {
            let (da, db) = (pa[i] - p0[i], pb[i] - p0[i]);
            assert!(
                (db - 0.25 * da).abs() <= 1e-3 * da.abs() + 1e-7,
                "{name}[{i}]: moved {db}, a quarter of {da} expected"
            );
            checked += (da != 0.0) as usize;
        }
    }
    assert!(checked > 1000, "only {checked} parameters moved");
}

#[test]
fn a_step_at_another_batch_size_equals_a_trainer_built_for_it() {
    // A run whose batch grows steps its state through a second pair of graphs; a trainer built
    // for that batch from the same state is the reference, to the bit.
    let cfg = small(0.9);
    let mut grown = GanTrainer::new(cfg.clone(), trainer::Device::Cpu).unwrap();
    let mut native = GanTrainer::new(
        GanConfig {
            batch: 2 * cfg.batch,
            ..cfg.clone()
        },
        trainer::Device::Cpu,
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (px, labels) = batch(&mut rng, cfg.batch);
    let (zd, zg) = (grown.draw_noise(cfg.batch), grown.draw_noise(cfg.batch));
    grown.step_with_noise(&px, &labels, &zd, &zg).unwrap();
    native.load_state(&grown.state().unwrap()).unwrap();
    let (px, labels) = batch(&mut rng, 2 * cfg.batch);
    let (zd, zg) = (
        grown.draw_noise(2 * cfg.batch),
        grown.draw_noise(2 * cfg.batch),
    );
    let a = grown.step_with_noise(&px, &labels, &zd, &zg).unwrap();
    let b = native.step_with_noise(&px, &labels, &zd, &zg).unwrap();
    assert_eq!(a, b);
    assert_eq!(grown.state().unwrap(), native.state().unwrap());
    // The first size still steps, and a batch that is no whole number of images is refused.
    grown
        .step(&px[..cfg.batch * 784], &labels[..cfg.batch])
        .unwrap();
    let err = grown
        .step(&px[..100], &labels[..1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a whole number"), "{err}");
}
