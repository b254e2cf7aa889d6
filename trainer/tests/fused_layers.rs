//! The fused layers of ONNX Runtime's CPU sessions (BatchNorm, one node forward with its
//! running statistics and one backward; the activations' gradients, one node each; the BCE
//! loss, one node each way) against
//! independent references: their kernels against the layers written out in f64 and finite
//! differences of them, and the GAN's losses, running statistics and gradients through them
//! against the standard ops' in the same runtime.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer::autodiff::gradients;
use trainer::gan::{GanConfig, LossGraph, d_loss_graph, g_loss_graph};
use trainer::graph::{DType, GResult};
use trainer::ops::{
    BN_EPS, BN_MOMENTUM, batch_norm_grad_kernel, batch_norm_kernel, bce_grad_kernel, bce_kernel,
    leaky_relu_grad_kernel,
};
use trainer::optim::Fusion;
use trainer::runtime::{Device, Executor, OrtExecutor};

/// BatchNorm in training mode, in f64: `y`, the batch mean and biased variance per channel.
fn reference(x: &[f64], gamma: &[f64], beta: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let c = gamma.len();
    let n = (x.len() / c) as f64;
    let mean: Vec<f64> = (0..c)
        .map(|j| x.iter().skip(j).step_by(c).sum::<f64>() / n)
        .collect();
    let var: Vec<f64> = (0..c)
        .map(|j| {
            let s: f64 = x
                .iter()
                .skip(j)
                .step_by(c)
                .map(|v| (v - mean[j]).powi(2))
                .sum();
            s / n
        })
        .collect();
    let y = (x.iter().enumerate())
        .map(|(i, v)| {
            let j = i % c;
            (v - mean[j]) / (var[j] + BN_EPS).sqrt() * gamma[j] + beta[j]
        })
        .collect();
    (y, mean, var)
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

#[test]
fn the_kernels_match_batch_norm_in_f64_and_its_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (n, c) in [(2, 1), (5, 3), (32, 7)] {
        let x = uniform(&mut rng, n * c, -2.0, 3.0);
        let gamma = uniform(&mut rng, c, 0.5, 1.5);
        let beta = uniform(&mut rng, c, -0.5, 0.5);
        // The loss Σ w·y, whose gradient with respect to y is w.
        let w = uniform(&mut rng, n * c, -1.0, 1.0);
        let running_mean = uniform(&mut rng, c, -1.0, 1.0);
        let running_var = uniform(&mut rng, c, 0.5, 2.0);
        let (y_ref, mean, var) = reference(&x, &gamma, &beta);
        // PyTorch's update: momentum 0.1, the batch's variance unbiased.
        let unbias = if n > 1 {
            n as f64 / (n - 1) as f64
        } else {
            1.0
        };
        let (rm_ref, rv_ref): (Vec<f64>, Vec<f64>) = (0..c)
            .map(|j| {
                let keep = 1.0 - BN_MOMENTUM;
                (
                    keep * running_mean[j] + BN_MOMENTUM * mean[j],
                    keep * running_var[j] + BN_MOMENTUM * unbias * var[j],
                )
            })
            .unzip();
        let (mut y, mut rm, mut rv) = (vec![0f32; n * c], vec![0f32; c], vec![0f32; c]);
        batch_norm_kernel(
            &f32s(&x),
            &f32s(&gamma),
            &f32s(&beta),
            &f32s(&running_mean),
            &f32s(&running_var),
            &mut y,
            &mut rm,
            &mut rv,
        );
        for (got, want, what) in [(&y, &y_ref, "y"), (&rm, &rm_ref, "running mean")]
            .into_iter()
            .chain([(&rv, &rv_ref, "running variance")])
        {
            for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
                assert!(
                    (*a as f64 - b).abs() < 1e-5 * (1.0 + b.abs()),
                    "{n}x{c} {what}[{i}]: {a} against {b}"
                );
            }
        }

        let (mut dx, mut dgamma, mut dbeta) = (vec![0f32; n * c], vec![0f32; c], vec![0f32; c]);
        batch_norm_grad_kernel(
            &f32s(&w),
            &f32s(&x),
            &f32s(&gamma),
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        );
        let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| -> f64 {
            let (y, _, _) = reference(x, gamma, beta);
            y.iter().zip(&w).map(|(a, b)| a * b).sum()
        };
        let h = 1e-6;
        let central = |bump: &dyn Fn(f64) -> f64| (bump(h) - bump(-h)) / (2.0 * h);
        for i in 0..n * c {
            let fd = central(&|d| {
                let mut xs = x.clone();
                xs[i] += d;
                loss(&xs, &gamma, &beta)
            });
            assert!(
                (dx[i] as f64 - fd).abs() < 1e-3 * (1.0 + fd.abs()),
                "{n}x{c} dx[{i}]: {} against finite differences {fd}",
                dx[i]
            );
        }
        for j in 0..c {
            let fd_g = central(&|d| {
                let mut g = gamma.clone();
                g[j] += d;
                loss(&x, &g, &beta)
            });
            let fd_b = central(&|d| {
                let mut b = beta.clone();
                b[j] += d;
                loss(&x, &gamma, &b)
            });
            assert!(
                (dgamma[j] as f64 - fd_g).abs() < 1e-3 * (1.0 + fd_g.abs()),
                "{n}x{c} dγ[{j}]: {} against {fd_g}",
                dgamma[j]
            );
            assert!(
                (dbeta[j] as f64 - fd_b).abs() < 1e-3 * (1.0 + fd_b.abs()),
                "{n}x{c} dβ[{j}]: {} against {fd_b}",
                dbeta[j]
            );
        }
    }
}

#[test]
fn the_activation_gradient_kernel_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let leaky = |slope: f64, x: f64| if x > 0.0 { x } else { slope * x };
    for slope in [0.0, 0.2] {
        // Away from the kink, where the derivative exists; and both sides of it.
        let x: Vec<f64> = (0..200)
            .map(|i| {
                let m = rng.random_range(0.01..3.0);
                if i % 2 == 0 { m } else { -m }
            })
            .collect();
        let dy = uniform(&mut rng, x.len(), -2.0, 2.0);
        let mut dx = vec![0f32; x.len()];
        leaky_relu_grad_kernel(slope as f32, &f32s(&x), &f32s(&dy), &mut dx);
        let h = 1e-6;
        for i in 0..x.len() {
            let fd = dy[i] * (leaky(slope, x[i] + h) - leaky(slope, x[i] - h)) / (2.0 * h);
            assert!(
                (dx[i] as f64 - fd).abs() < 1e-5 * (1.0 + fd.abs()),
                "slope {slope}, x {}: dx {} against finite differences {fd}",
                x[i],
                dx[i]
            );
        }
    }
}

#[test]
fn the_loss_kernels_match_bce_in_f64_and_its_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    // ln(1 + eˣ) − t·x in f64, with ln(1 + eˣ) = x + ln(1 + e⁻ˣ) for large x.
    let softplus = |x: f64| {
        if x > 30.0 {
            x + (-x).exp().ln_1p()
        } else {
            x.exp().ln_1p()
        }
    };
    let mean = |x: &[f64], t: &[f64]| {
        let at = |i: usize| t[if t.len() == 1 { 0 } else { i }];
        (x.iter().enumerate())
            .map(|(i, &v)| softplus(v) - at(i) * v)
            .sum::<f64>()
            / x.len() as f64
    };
    for (n, one_target) in [(1, false), (7, true), (64, false)] {
        let mut x = uniform(&mut rng, n, -6.0, 6.0);
        if n > 2 {
            // Far out on both sides: finite, and the gradient saturates.
            x[0] = 90.0;
            x[1] = -90.0;
        }
        let t = if one_target {
            vec![1.0]
        } else {
            uniform(&mut rng, n, 0.0, 1.0)
        };
        let got = bce_kernel(&f32s(&x), &f32s(&t)) as f64;
        let want = mean(&x, &t);
        assert!(
            (got - want).abs() < 1e-5 * (1.0 + want.abs()),
            "{n} logits: loss {got} against {want}"
        );
        let dloss = 1.7;
        let mut dx = vec![0f32; n];
        bce_grad_kernel(dloss as f32, &f32s(&x), &f32s(&t), &mut dx);
        let h = 1e-5;
        for i in 0..n {
            let bumped = |d: f64| {
                let mut xs = x.clone();
                xs[i] += d;
                mean(&xs, &t)
            };
            let fd = dloss * (bumped(h) - bumped(-h)) / (2.0 * h);
            assert!(
                dx[i].is_finite() && (dx[i] as f64 - fd).abs() < 1e-4 * (1.0 + fd.abs()),
                "{n} logits, x {}: dx {} against finite differences {fd}",
                x[i],
                dx[i]
            );
        }
    }
}

/// Each loss of the default preset (batch 32), differentiated with respect to its own
/// model's tensors, once through the fused layers and once through the standard ops, both in
/// ONNX Runtime from the same initial state: the loss, the updated running statistics and
/// every gradient agree to f32 rounding. (The biases before each BatchNorm have an
/// exactly-zero gradient, rounding noise in both forms: the bound's floor.)
#[test]
fn gan_gradients_through_the_fused_layers_equal_the_standard_ops() {
    let mut cfg = GanConfig::from_run(&checkpoint::RunConfig::preset(checkpoint::Preset::Lm3s6965));
    cfg.batch = 32;
    let state = cfg.initial_state();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let z: Vec<f32> = (0..cfg.batch * cfg.z_dim)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let real: Vec<f32> = (0..cfg.batch * cfg.image_dim)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let classes = cfg.classes.expect("the default preset is conditional");
    let onehot: Vec<f32> = (0..cfg.batch * classes)
        .map(|i| f32::from(i % classes == (i / classes) % classes))
        .collect();
    type Build = fn(&GanConfig, DType, Fusion) -> GResult<LossGraph>;
    let losses: [(&str, Build, _); 2] = [
        ("g_loss", g_loss_graph, cfg.generator_specs()),
        ("d_loss", d_loss_graph, cfg.discriminator_specs()),
    ];
    for (what, build, specs) in losses {
        let mut results = Vec::new();
        let mut nodes = Vec::new();
        for fusion in [Fusion::Fused, Fusion::Standard] {
            let mut lg = build(&cfg, DType::F32, fusion).unwrap();
            let wrt: Vec<_> = specs.iter().map(|s| lg.params[&s.name]).collect();
            let grads = gradients(&mut lg.graph, lg.loss, &wrt, fusion).unwrap();
            let mut fetch = vec!["loss".to_string()];
            lg.graph.output("loss", lg.loss).unwrap();
            for (s, g) in specs.iter().zip(grads) {
                lg.graph.output(&format!("grad.{}", s.name), g).unwrap();
                fetch.push(format!("grad.{}", s.name));
            }
            for (name, id) in &lg.stats {
                lg.graph.output(&format!("stat.{name}"), *id).unwrap();
                fetch.push(format!("stat.{name}"));
            }
            nodes.push(lg.graph.nodes.len());
            let mut exec = OrtExecutor::new(Device::Cpu).unwrap().with_fusion(fusion);
            let h = exec.load(&lg.graph, what).unwrap();
            let mut feeds: Vec<(&str, &[f32])> = vec![("z", &z), ("onehot", &onehot)];
            if what == "d_loss" {
                feeds.push(("real", &real));
            }
            for t in &state {
                if lg.params.contains_key(&t.name) {
                    feeds.push((t.name.as_str(), &t.data));
                }
            }
            let names: Vec<&str> = fetch.iter().map(String::as_str).collect();
            let out = exec.run(h, &feeds, &names).unwrap();
            results.push((fetch, out));
        }
        assert!(
            nodes[0] < nodes[1],
            "{what}: the fused graph has {} nodes, the standard {}",
            nodes[0],
            nodes[1]
        );
        let ((names, fused), (_, standard)) = (&results[0], &results[1]);
        assert_eq!(names.len(), 1 + specs.len() + 2 * cfg.g_widths.len());
        for ((name, a), b) in names.iter().zip(fused).zip(standard) {
            assert_eq!(a.len(), b.len(), "{what} {name}");
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-4);
            for (i, (u, v)) in a.iter().zip(b).enumerate() {
                assert!(
                    (u - v).abs() <= 2e-5 * scale,
                    "{what} {name}[{i}]: fused {u}, standard {v} (largest |value| {scale})"
                );
            }
        }
    }
}
