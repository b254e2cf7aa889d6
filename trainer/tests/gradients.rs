//! Finite-difference checks of every gradient rule, in f64, with tract as the evaluator of the
//! forward graph at perturbed inputs (the reference does not use the differentiator).

use checkpoint::Conditioning;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer::autodiff::gradients;
use trainer::gan::{GanConfig, d_loss_graph, g_loss_graph};
use trainer::graph::{DType, GResult, Graph, Id};
use trainer::ops;
use trainer::optim::{Adam, Fusion};
use trainer::runtime::TractEval;

struct In {
    name: &'static str,
    shape: Vec<i64>,
    data: Vec<f64>,
}

fn rand_in(rng: &mut ChaCha8Rng, name: &'static str, shape: &[i64], lo: f64, hi: f64) -> In {
    let n = shape.iter().product::<i64>().max(1) as usize;
    In {
        name,
        shape: shape.to_vec(),
        data: (0..n).map(|_| rng.random_range(lo..hi)).collect(),
    }
}

/// Reduces any output to a scalar with fixed random weights, so every element is checked.
fn scalarize(g: &mut Graph, y: Id, rng: &mut ChaCha8Rng) -> GResult<Id> {
    if g.shape(y).is_empty() {
        return Ok(y);
    }
    let s = g.shape(y).to_vec();
    let n = s.iter().product::<i64>() as usize;
    let w = g.constant((0..n).map(|_| rng.random_range(-1.0..1.0)).collect(), &s);
    let p = g.mul(y, w)?;
    let axes: Vec<i64> = (0..s.len() as i64).collect();
    Ok(g.reduce_sum(p, &axes, false))
}

/// Checks d(loss)/d(input) for every input element against central differences.
fn check(inputs: Vec<In>, f: impl Fn(&mut Graph, &[Id]) -> GResult<Id>, tol: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut g = Graph::new(DType::F64);
    let ids: Vec<Id> = inputs.iter().map(|i| g.input(i.name, &i.shape)).collect();
    let y = f(&mut g, &ids).unwrap();
    let loss = scalarize(&mut g, y, &mut rng).unwrap();
    let mut fwd = g.clone();
    fwd.output("loss", loss).unwrap();
    let grads = gradients(&mut g, loss, &ids, Fusion::Standard).unwrap();
    for (k, gi) in grads.iter().enumerate() {
        g.output(&format!("grad{k}"), *gi).unwrap();
    }
    let fwd = TractEval::new(&fwd).unwrap();
    let bwd = TractEval::new(&g).unwrap();
    let feed = |vals: &[Vec<f64>]| -> Vec<(&str, Vec<f64>)> {
        inputs
            .iter()
            .zip(vals)
            .map(|(i, v)| (i.name, v.clone()))
            .collect()
    };
    let base: Vec<Vec<f64>> = inputs.iter().map(|i| i.data.clone()).collect();
    let run = |e: &TractEval, vals: &[Vec<f64>]| {
        let fed = feed(vals);
        let refs: Vec<(&str, &[f64])> = fed.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        e.run(&refs).unwrap()
    };
    let analytic = run(&bwd, &base);
    let eps = 1e-6;
    let mut worst = 0.0f64;
    for (k, inp) in inputs.iter().enumerate() {
        for j in 0..inp.data.len() {
            let mut plus = base.clone();
            plus[k][j] += eps;
            let mut minus = base.clone();
            minus[k][j] -= eps;
            let fp = run(&fwd, &plus)[0][0];
            let fm = run(&fwd, &minus)[0][0];
            let numeric = (fp - fm) / (2.0 * eps);
            let a = analytic[k][j];
            let err = (a - numeric).abs() / (1.0 + a.abs().max(numeric.abs()));
            worst = worst.max(err);
            assert!(
                err < tol,
                "d/d{}[{j}]: analytic {a}, numeric {numeric} (relative error {err:e})",
                inp.name
            );
        }
    }
    assert!(worst.is_finite());
}

const TOL: f64 = 1e-6;

#[test]
fn gemm_all_transpositions_and_bias() {
    let mut r = ChaCha8Rng::seed_from_u64(1);
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let a = if ta { [4, 3] } else { [3, 4] };
        let b = if tb { [5, 4] } else { [4, 5] };
        check(
            vec![
                rand_in(&mut r, "a", &a, -1.0, 1.0),
                rand_in(&mut r, "b", &b, -1.0, 1.0),
                rand_in(&mut r, "c", &[5], -1.0, 1.0),
            ],
            |g, x| g.gemm(x[0], x[1], Some(x[2]), ta, tb),
            TOL,
        );
    }
}

#[test]
fn add_sub_mul_div_with_broadcasting() {
    let mut r = ChaCha8Rng::seed_from_u64(2);
    type Bin = fn(&mut Graph, Id, Id) -> GResult<Id>;
    let ops: [(&str, Bin); 4] = [
        ("add", Graph::add),
        ("sub", Graph::sub),
        ("mul", Graph::mul),
        ("div", Graph::div),
    ];
    for (_, op) in ops {
        for (sa, sb) in [
            (vec![3, 4], vec![3, 4]),
            (vec![3, 4], vec![4]),
            (vec![3, 1], vec![1, 4]),
            (vec![], vec![2, 3]),
        ] {
            check(
                vec![
                    rand_in(&mut r, "a", &sa, 0.5, 1.5),
                    rand_in(&mut r, "b", &sb, 0.5, 1.5),
                ],
                |g, x| op(g, x[0], x[1]),
                TOL,
            );
        }
    }
}

#[test]
fn concat_on_both_axes() {
    let mut r = ChaCha8Rng::seed_from_u64(3);
    check(
        vec![
            rand_in(&mut r, "a", &[2, 3], -1.0, 1.0),
            rand_in(&mut r, "b", &[4, 3], -1.0, 1.0),
        ],
        |g, x| g.concat(&[x[0], x[1]], 0),
        TOL,
    );
    check(
        vec![
            rand_in(&mut r, "a", &[2, 3], -1.0, 1.0),
            rand_in(&mut r, "b", &[2, 1], -1.0, 1.0),
        ],
        |g, x| g.concat(&[x[0], x[1], x[0]], 1),
        TOL,
    );
}

#[test]
fn slice_at_the_start_middle_and_end() {
    let mut r = ChaCha8Rng::seed_from_u64(31);
    for (axis, start, end) in [(0, 0, 2), (0, 1, 3), (1, 2, 5), (-1, 0, 5), (1, 1, 2)] {
        check(
            vec![rand_in(&mut r, "a", &[4, 5], -1.0, 1.0)],
            |g, x| Ok(g.slice(x[0], axis, start, end)),
            TOL,
        );
    }
}

#[test]
fn reductions() {
    let mut r = ChaCha8Rng::seed_from_u64(4);
    for keep in [false, true] {
        for axes in [vec![0], vec![1], vec![0, 1]] {
            check(
                vec![rand_in(&mut r, "a", &[3, 4], -1.0, 1.0)],
                |g, x| Ok(g.reduce_mean(x[0], &axes, keep)),
                TOL,
            );
            check(
                vec![rand_in(&mut r, "a", &[3, 4], -1.0, 1.0)],
                |g, x| Ok(g.reduce_sum(x[0], &axes, keep)),
                TOL,
            );
        }
    }
}

#[test]
fn elementwise_functions() {
    let mut r = ChaCha8Rng::seed_from_u64(5);
    type Un = fn(&mut Graph, Id) -> Id;
    // Inputs kept away from the kinks of relu/abs/leaky relu (finite differences straddle
    // them otherwise) and positive for sqrt/log.
    let away = |r: &mut ChaCha8Rng| {
        let mut i = rand_in(r, "x", &[3, 4], 0.1, 2.0);
        for (k, v) in i.data.iter_mut().enumerate() {
            if k % 2 == 0 {
                *v = -*v;
            }
        }
        i
    };
    let signed: [(&str, Un); 6] = [
        ("relu", Graph::relu),
        ("abs", Graph::abs),
        ("neg", Graph::neg),
        ("sigmoid", Graph::sigmoid),
        ("exp", Graph::exp),
        ("leaky", |g, x| g.leaky_relu(x, 0.2)),
    ];
    for (_, op) in signed {
        check(vec![away(&mut r)], |g, x| Ok(op(g, x[0])), TOL);
    }
    let positive: [(&str, Un); 2] = [("sqrt", Graph::sqrt), ("log", Graph::log)];
    for (_, op) in positive {
        check(
            vec![rand_in(&mut r, "x", &[3, 4], 0.2, 3.0)],
            |g, x| Ok(op(g, x[0])),
            TOL,
        );
    }
}

#[test]
fn where_reshape_expand() {
    let mut r = ChaCha8Rng::seed_from_u64(6);
    check(
        vec![
            rand_in(&mut r, "a", &[3, 4], -1.0, 1.0),
            rand_in(&mut r, "b", &[4], -1.0, 1.0),
        ],
        |g, x| {
            let c = g.constant(
                (0..12)
                    .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
                    .collect(),
                &[3, 4],
            );
            let zero = g.scalar(0.0);
            let cond = g.greater(c, zero)?;
            g.where_(cond, x[0], x[1])
        },
        TOL,
    );
    check(
        vec![rand_in(&mut r, "a", &[3, 4], -1.0, 1.0)],
        |g, x| Ok(g.reshape(x[0], &[2, 6])),
        TOL,
    );
    check(
        vec![rand_in(&mut r, "a", &[1, 4], -1.0, 1.0)],
        |g, x| g.expand(x[0], &[3, 4]),
        TOL,
    );
}

#[test]
fn softplus_is_stable_and_correct() {
    let mut r = ChaCha8Rng::seed_from_u64(8);
    check(
        vec![rand_in(&mut r, "x", &[2, 5], -4.0, 4.0)],
        |g, x| ops::softplus(g, x[0]),
        TOL,
    );
    // Large logits: finite, and equal to max(x, 0) + log1p(exp(-|x|)).
    let mut g = Graph::new(DType::F64);
    let x = g.input("x", &[4]);
    let y = ops::softplus(&mut g, x).unwrap();
    g.output("y", y).unwrap();
    let xs = [-800.0, -30.0, 30.0, 800.0];
    let out = TractEval::new(&g).unwrap().run(&[("x", &xs)]).unwrap();
    for (x, y) in xs.iter().zip(&out[0]) {
        let expect = x.max(0.0) + (-x.abs()).exp().ln_1p();
        assert!(
            (y - expect).abs() < 1e-12,
            "softplus({x}) = {y}, expected {expect}"
        );
    }
}

#[test]
fn batch_norm_training_mode() {
    let mut r = ChaCha8Rng::seed_from_u64(9);
    check(
        vec![
            rand_in(&mut r, "x", &[5, 3], -2.0, 2.0),
            rand_in(&mut r, "gamma", &[3], 0.5, 1.5),
            rand_in(&mut r, "beta", &[3], -0.5, 0.5),
        ],
        |g, x| {
            let rm = g.constant(vec![0.0; 3], &[3]);
            let rv = g.constant(vec![1.0; 3], &[3]);
            Ok(ops::batch_norm_train(g, x[0], x[1], x[2], rm, rv, Fusion::Standard)?.y)
        },
        TOL,
    );
}

#[test]
fn batch_norm_statistics_match_pytorch_semantics() {
    // Batch statistics normalise; running statistics move by momentum 0.1 with the unbiased
    // variance; eval mode uses the running statistics.
    let xs = [1.0, 10.0, 2.0, 20.0, 6.0, 60.0]; // [3, 2]
    let mut g = Graph::new(DType::F64);
    let x = g.input("x", &[3, 2]);
    let gamma = g.constant(vec![2.0, 1.0], &[2]);
    let beta = g.constant(vec![0.5, 0.0], &[2]);
    let rm = g.constant(vec![1.0, 2.0], &[2]);
    let rv = g.constant(vec![3.0, 4.0], &[2]);
    let bn = ops::batch_norm_train(&mut g, x, gamma, beta, rm, rv, Fusion::Standard).unwrap();
    let ev = ops::batch_norm_eval(&mut g, x, gamma, beta, rm, rv).unwrap();
    g.output("y", bn.y).unwrap();
    g.output("rm", bn.running_mean).unwrap();
    g.output("rv", bn.running_var).unwrap();
    g.output("ev", ev).unwrap();
    let out = TractEval::new(&g).unwrap().run(&[("x", &xs)]).unwrap();
    let (gam, bet, rm0, rv0): ([f64; 2], [f64; 2], [f64; 2], [f64; 2]) =
        ([2.0, 1.0], [0.5, 0.0], [1.0, 2.0], [3.0, 4.0]);
    for c in 0..2 {
        let col: Vec<f64> = (0..3).map(|i| xs[i * 2 + c]).collect();
        let mean = col.iter().sum::<f64>() / 3.0;
        let var_b = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3.0;
        let var_u = var_b * 3.0 / 2.0;
        for i in 0..3 {
            let y = (col[i] - mean) / (var_b + 1e-5).sqrt() * gam[c] + bet[c];
            assert!(
                (out[0][i * 2 + c] - y).abs() < 1e-12,
                "y {} vs {y}; all {:?}",
                out[0][i * 2 + c],
                out
            );
            let e = (col[i] - rm0[c]) / (rv0[c] + 1e-5).sqrt() * gam[c] + bet[c];
            assert!((out[3][i * 2 + c] - e).abs() < 1e-12);
        }
        assert!((out[1][c] - (0.9 * rm0[c] + 0.1 * mean)).abs() < 1e-12);
        assert!((out[2][c] - (0.9 * rv0[c] + 0.1 * var_u)).abs() < 1e-12);
    }
}

#[test]
fn bce_with_logits_gradient_and_value() {
    let mut r = ChaCha8Rng::seed_from_u64(10);
    let t = rand_in(&mut r, "t", &[6, 1], 0.0, 1.0);
    check(
        vec![rand_in(&mut r, "x", &[6, 1], -3.0, 3.0), t],
        |g, x| ops::bce_with_logits(g, x[0], x[1], Fusion::Standard),
        TOL,
    );
    let mut g = Graph::new(DType::F64);
    let x = g.input("x", &[3]);
    let t = g.input("t", &[3]);
    let l = ops::bce_with_logits(&mut g, x, t, Fusion::Standard).unwrap();
    g.output("l", l).unwrap();
    let (xs, ts) = ([0.3, -2.0, 5.0], [1.0, 0.0, 0.25]);
    let out = TractEval::new(&g)
        .unwrap()
        .run(&[("x", &xs), ("t", &ts)])
        .unwrap();
    let expect: f64 = xs
        .iter()
        .zip(&ts)
        .map(|(x, t)| {
            let p = 1.0 / (1.0 + (-x).exp());
            -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / 3.0;
    assert!(
        (out[0][0] - expect).abs() < 1e-12,
        "{} vs {expect}",
        out[0][0]
    );
}

#[test]
fn softmax_cross_entropy_gradient_and_value() {
    let mut r = ChaCha8Rng::seed_from_u64(11);
    let labels = [2usize, 0, 3];
    let onehot: Vec<f64> = (0..12)
        .map(|i| if labels[i / 4] == i % 4 { 1.0 } else { 0.0 })
        .collect();
    check(
        vec![
            rand_in(&mut r, "x", &[3, 4], -3.0, 3.0),
            In {
                name: "t",
                shape: vec![3, 4],
                data: onehot.clone(),
            },
        ],
        |g, x| ops::softmax_cross_entropy(g, x[0], x[1]),
        TOL,
    );
    let mut g = Graph::new(DType::F64);
    let x = g.input("x", &[3, 4]);
    let t = g.input("t", &[3, 4]);
    let l = ops::softmax_cross_entropy(&mut g, x, t).unwrap();
    g.output("l", l).unwrap();
    // Large logits stay finite thanks to the max shift.
    let xs: Vec<f64> = (0..12).map(|i| (i as f64 - 6.0) * 100.0).collect();
    let out = TractEval::new(&g)
        .unwrap()
        .run(&[("x", &xs), ("t", &onehot)])
        .unwrap();
    let mut expect = 0.0;
    for (i, &lab) in labels.iter().enumerate() {
        let row = &xs[i * 4..i * 4 + 4];
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        expect += lse - row[lab];
    }
    expect /= 3.0;
    assert!(
        (out[0][0] - expect).abs() < 1e-9,
        "{} vs {expect}",
        out[0][0]
    );
}

fn small_gan(conditional: bool) -> GanConfig {
    GanConfig {
        conditioning: Conditioning::Concat,
        aux_weight: 1.0,
        real_target: 1.0,
        z_dim: 3,
        classes: conditional.then_some(3),
        g_widths: vec![5, 4],
        d_widths: vec![6, 3],
        image_dim: 7,
        batch: 4,
        g_adam: Adam::new(1e-3, 0.9, 0.999),
        d_adam: Adam::new(1e-3, 0.9, 0.999),
        leaky_slope: 0.2,
        ema: 0.0,
        seed: 3,
    }
}

/// Checks the gradient of a whole GAN loss with respect to one model's parameters, holding
/// everything else (the other model, data, noise) fixed.
fn check_gan_loss(cfg: &GanConfig, discriminator_loss: bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let lg = if discriminator_loss {
        d_loss_graph(cfg, DType::F64, Fusion::Standard).unwrap()
    } else {
        g_loss_graph(cfg, DType::F64, Fusion::Standard).unwrap()
    };
    let specs = if discriminator_loss {
        cfg.discriminator_specs()
    } else {
        cfg.generator_specs()
    };
    let trainable: Vec<_> = specs.into_iter().filter(|s| s.trainable).collect();
    // Fixed inputs: every graph input that is not checked.
    let mut fixed: Vec<(String, Vec<f64>)> = Vec::new();
    let init = cfg.initial_state();
    for (name, shape) in lg.graph.inputs() {
        if trainable.iter().any(|s| s.name == name) {
            continue;
        }
        let n = shape.iter().product::<i64>().max(1) as usize;
        let data = if let Some(t) = init.iter().find(|t| t.name == name) {
            t.data.iter().map(|&v| v as f64).collect()
        } else if name == "onehot" {
            (0..n)
                .map(|i| if (i / 3) % 3 == i % 3 { 1.0 } else { 0.0 })
                .collect()
        } else {
            (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
        };
        fixed.push((name, data));
    }
    let mut g = lg.graph.clone();
    let wrt: Vec<Id> = trainable.iter().map(|s| lg.params[&s.name]).collect();
    let mut fwd = g.clone();
    fwd.output("loss", lg.loss).unwrap();
    let grads = gradients(&mut g, lg.loss, &wrt, Fusion::Standard).unwrap();
    for (k, gi) in grads.iter().enumerate() {
        g.output(&format!("grad{k}"), *gi).unwrap();
    }
    let (fwd, bwd) = (TractEval::new(&fwd).unwrap(), TractEval::new(&g).unwrap());
    let base: Vec<Vec<f64>> = trainable
        .iter()
        .map(|s| {
            let t = init.iter().find(|t| t.name == s.name).unwrap();
            // Perturb BN gammas/betas away from 1/0 so every path matters.
            t.data
                .iter()
                .map(|&v| v as f64 + rng.random_range(-0.3..0.3))
                .collect()
        })
        .collect();
    let run = |e: &TractEval, vals: &[Vec<f64>]| {
        let mut feeds: Vec<(&str, &[f64])> = fixed
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        for (s, v) in trainable.iter().zip(vals) {
            feeds.push((s.name.as_str(), v.as_slice()));
        }
        e.run(&feeds).unwrap()
    };
    let analytic = run(&bwd, &base);
    let eps = 1e-6;
    let mut checked = 0;
    for (k, s) in trainable.iter().enumerate() {
        // A few elements of each tensor (all of the small ones).
        let n = base[k].len();
        let picks: Vec<usize> = if n <= 8 {
            (0..n).collect()
        } else {
            (0..8).map(|_| rng.random_range(0..n)).collect()
        };
        for j in picks {
            let mut p = base.clone();
            p[k][j] += eps;
            let mut m = base.clone();
            m[k][j] -= eps;
            let numeric = (run(&fwd, &p)[0][0] - run(&fwd, &m)[0][0]) / (2.0 * eps);
            let a = analytic[k][j];
            let err = (a - numeric).abs() / (1e-3 + a.abs().max(numeric.abs()));
            assert!(
                err < 1e-5,
                "{}[{j}]: analytic {a:e}, numeric {numeric:e}",
                s.name
            );
            checked += 1;
        }
    }
    assert!(checked > 20);
}

/// The AC-GAN variant: D sees the image alone, with a class head and a weighted auxiliary
/// loss, and a smoothed real target.
fn small_acgan() -> GanConfig {
    GanConfig {
        conditioning: Conditioning::Auxiliary,
        aux_weight: 0.7,
        real_target: 0.9,
        ..small_gan(true)
    }
}

/// The projection discriminator: D sees the image alone, its logit gains ⟨embed(y), φ(x)⟩.
fn small_projection() -> GanConfig {
    GanConfig {
        conditioning: Conditioning::Projection,
        real_target: 0.9,
        ..small_gan(true)
    }
}

#[test]
fn discriminator_loss_gradient() {
    check_gan_loss(&small_gan(false), true);
    check_gan_loss(&small_gan(true), true);
    check_gan_loss(&small_acgan(), true);
    check_gan_loss(&small_projection(), true);
}

#[test]
fn generator_loss_gradient_through_the_discriminator() {
    check_gan_loss(&small_gan(false), false);
    check_gan_loss(&small_gan(true), false);
    check_gan_loss(&small_acgan(), false);
    check_gan_loss(&small_projection(), false);
}

#[test]
fn conditional_discriminators_have_the_right_inputs_and_heads() {
    let (concat, ac) = (small_gan(true), small_acgan());
    let shape = |c: &GanConfig, n: &str| {
        c.discriminator_specs()
            .into_iter()
            .find(|s| s.name == n)
            .unwrap()
            .shape
    };
    assert_eq!(shape(&concat, "d.block0.linear.weight"), vec![6, 7 + 3]);
    assert_eq!(shape(&ac, "d.block0.linear.weight"), vec![6, 7]);
    assert_eq!(shape(&concat, "d.out.weight"), vec![1, 3]);
    assert_eq!(shape(&ac, "d.out.weight"), vec![1 + 3, 3]);
    let proj = small_projection();
    assert_eq!(shape(&proj, "d.block0.linear.weight"), vec![6, 7]);
    assert_eq!(shape(&proj, "d.out.weight"), vec![1, 3]);
    assert_eq!(
        shape(&proj, "d.embed.weight"),
        vec![3, 3],
        "one row per class"
    );
}
