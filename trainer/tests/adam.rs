//! Adam as graph nodes equals Adam computed by hand (PyTorch's formulation) on a small
//! problem, on both runtimes and in both forms; the fused form equals the standard one over
//! whole GAN steps, weight average included.

use std::collections::HashMap;
use trainer::graph::{DType, Graph};
use trainer::model::{Init, ParamSpec, declare, emit_adam};
use trainer::optim::{Adam, Fusion};
use trainer::runtime::{Device, Executor, OrtExecutor, TractExecutor};

const C: [f64; 6] = [0.5, -1.0, 2.0, 0.25, 1.5, -0.75];
const D: [f64; 6] = [0.1, 0.3, -0.2, 1.0, -0.5, 0.05];

/// loss = Σ c·w² + Σ d·w, so dloss/dw = 2c·w + d.
fn problem(adam: &Adam, fusion: Fusion) -> Graph {
    let mut g = Graph::new(DType::F32);
    let specs = [ParamSpec {
        name: "w".into(),
        shape: vec![2, 3],
        init: Init::Zeros,
        trainable: true,
    }];
    let p: HashMap<_, _> = declare(&mut g, &specs);
    let w = p["w"];
    let c = g.constant(C.to_vec(), &[2, 3]);
    let d = g.constant(D.to_vec(), &[2, 3]);
    let ww = g.mul(w, w).unwrap();
    let cw = g.mul(ww, c).unwrap();
    let dw = g.mul(w, d).unwrap();
    let s = g.add(cw, dw).unwrap();
    let loss = g.reduce_sum(s, &[0, 1], false);
    emit_adam(&mut g, "m", &specs, &p, loss, adam, false, fusion).unwrap();
    g.output("loss", loss).unwrap();
    g
}

/// PyTorch's Adam, step by step, in f64.
fn reference(adam: &Adam, w0: &[f64], steps: usize) -> Vec<Vec<f64>> {
    let mut w = w0.to_vec();
    let mut m = [0.0; 6];
    let mut v = [0.0; 6];
    let mut out = Vec::new();
    for t in 1..=steps {
        for i in 0..6 {
            let g = 2.0 * C[i] * w[i] + D[i];
            m[i] = adam.beta1 * m[i] + (1.0 - adam.beta1) * g;
            v[i] = adam.beta2 * v[i] + (1.0 - adam.beta2) * g * g;
            let bc1 = 1.0 - adam.beta1.powi(t as i32);
            let bc2 = 1.0 - adam.beta2.powi(t as i32);
            let denom = v[i].sqrt() / bc2.sqrt() + adam.eps;
            w[i] -= adam.lr / bc1 * m[i] / denom;
        }
        out.push(w.clone());
    }
    out
}

fn run(exec: &mut dyn Executor, adam: &Adam, w0: &[f32], steps: usize) -> Vec<Vec<f32>> {
    let h = exec.load(&problem(adam, exec.fusion()), "adam").unwrap();
    exec.set_state("w", &[2, 3], w0).unwrap();
    exec.set_state("w.adam_m", &[2, 3], &[0.0; 6]).unwrap();
    exec.set_state("w.adam_v", &[2, 3], &[0.0; 6]).unwrap();
    exec.set_state("m.adam_step", &[], &[0.0]).unwrap();
    let mut out = Vec::new();
    for _ in 0..steps {
        exec.run(h, &[], &["loss"]).unwrap();
        out.push(exec.state("w").unwrap().1);
    }
    assert_eq!(exec.state("m.adam_step").unwrap().1, vec![steps as f32]);
    out
}

#[test]
fn adam_matches_hand_computed_reference() {
    let w0 = [0.3f32, -0.2, 0.7, -1.1, 0.05, 0.4];
    let w0d: Vec<f64> = w0.iter().map(|&x| x as f64).collect();
    for adam in [Adam::new(0.1, 0.9, 0.999), Adam::new(0.02, 0.5, 0.99)] {
        let expect = reference(&adam, &w0d, 5);
        let mut tract = TractExecutor::new();
        let mut fused = OrtExecutor::new(Device::Cpu).unwrap();
        assert_eq!(fused.fusion(), Fusion::Fused);
        let mut standard = OrtExecutor::new(Device::Cpu)
            .unwrap()
            .with_fusion(Fusion::Standard);
        for got in [
            run(&mut tract, &adam, &w0, 5),
            run(&mut fused, &adam, &w0, 5),
            run(&mut standard, &adam, &w0, 5),
        ] {
            for (step, (g, e)) in got.iter().zip(&expect).enumerate() {
                for (a, b) in g.iter().zip(e) {
                    assert!(
                        (*a as f64 - b).abs() < 1e-5,
                        "step {}: {a} vs reference {b} ({adam:?})",
                        step + 1
                    );
                }
            }
        }
    }
}

/// Both forms of the optimizer in ONNX Runtime over ten steps of the default preset's GAN
/// (Adam on both models, the weight average, the learning-rate scale), BatchNorm in standard
/// ops in both: every state tensor agrees to a few f32 roundings (the forms compute the same
/// operations; the runtime's vector kernels may round a product and a sum differently). The
/// fused BatchNorm rounds differently, and Adam turns rounding noise in the exactly-zero
/// gradients of the biases before it into whole steps, so it is compared on gradients
/// (`tests/fused_layers.rs`).
#[test]
fn the_fused_optimizer_equals_the_standard_ops_over_gan_steps() {
    use trainer::gan::{GanConfig, GanTrainer};
    let mut cfg = GanConfig::from_run(&checkpoint::RunConfig::preset(checkpoint::Preset::Lm3s6965));
    cfg.batch = 32;
    let trainer = |fusion: Fusion| {
        let exec = OrtExecutor::new(Device::Cpu).unwrap().with_fusion(fusion);
        GanTrainer::with_executor(cfg.clone(), Box::new(exec)).unwrap()
    };
    let (mut fused, mut standard) = (trainer(Fusion::Optimizer), trainer(Fusion::Standard));
    let real: Vec<f32> = (0..cfg.batch * 784)
        .map(|i| ((i * 37) % 101) as f32 / 100.0)
        .collect();
    let labels: Vec<u8> = (0..cfg.batch).map(|i| (i % 10) as u8).collect();
    for step in 0..10 {
        let scale = 1.0 - 0.05 * step as f32;
        fused.set_lr_scale(scale).unwrap();
        standard.set_lr_scale(scale).unwrap();
        let (zd, zg) = (fused.draw_noise(cfg.batch), fused.draw_noise(cfg.batch));
        let a = fused.step_with_noise(&real, &labels, &zd, &zg).unwrap();
        let b = standard.step_with_noise(&real, &labels, &zd, &zg).unwrap();
        assert!(
            (a.d_loss - b.d_loss).abs() < 1e-4,
            "step {step}: {a:?} vs {b:?}"
        );
        assert!(
            (a.g_loss - b.g_loss).abs() < 1e-4,
            "step {step}: {a:?} vs {b:?}"
        );
    }
    let (a, b) = (fused.state().unwrap(), standard.state().unwrap());
    assert_eq!(a.len(), b.len());
    let mut compared = 0;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.name, &x.shape), (&y.name, &y.shape));
        let scale = y.data.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (u, v)) in x.data.iter().zip(&y.data).enumerate() {
            assert!(
                (u - v).abs() <= 1e-4 * scale,
                "{}[{i}]: fused {u}, standard {v} (largest |value| {scale})",
                x.name
            );
            compared += 1;
        }
    }
    // Every kind of state: parameters, both moments, the averages and the step counters.
    for kind in [".adam_m", ".adam_v", ".ema", "adam_step"] {
        assert!(
            a.iter().any(|t| t.name.contains(kind)),
            "no {kind} tensor compared"
        );
    }
    assert!(compared > 500_000, "{compared} values compared");
}
