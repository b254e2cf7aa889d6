//! Milliseconds per seed GAN step (D step + G step, batch 128) with ONNX Runtime, and, when
//! PyTorch is importable, the same step in PyTorch on the same threads and device, with the
//! ratio ours / PyTorch. Beside it, for the seed and the default preset, the step's matrix
//! products alone (the same Gemm nodes and shapes in a graph of their own): the step's time
//! over theirs is what everything else in the step costs; and for the default preset on the
//! CPU, the step with the optimizer and the layers fused, with the optimizer alone fused, and in
//! standard ONNX ops. `MCUGAN_BENCH_DEVICE=cuda` (what `cargo xtask bench train --device
//! cuda` sets) runs both on the GPU. PyTorch is looked for in `python3`, or in the interpreter
//! `MCUGAN_PYTHON` names (a virtual environment's, say).

use criterion::Criterion;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::process::Command;
use std::time::{Duration, Instant};
use trainer::gan::{GanConfig, GanTrainer, d_step_graph, g_step_graph};
use trainer::graph::DType;
use trainer::optim::Fusion;
use trainer::runtime::{Device, Executor, OrtExecutor};

fn device() -> Device {
    match std::env::var("MCUGAN_BENCH_DEVICE") {
        Ok(d) => d.parse().expect("MCUGAN_BENCH_DEVICE: cpu or cuda"),
        Err(_) => Device::Cpu,
    }
}

fn trainer() -> (GanTrainer, Vec<f32>, Vec<u8>, Vec<f32>, Vec<f32>) {
    trainer_for(GanConfig::seed_recipe())
}

fn trainer_for(cfg: GanConfig) -> (GanTrainer, Vec<f32>, Vec<u8>, Vec<f32>, Vec<f32>) {
    trainer_with(cfg, Fusion::Fused)
}

/// A trainer whose optimizer takes `fusion`'s form where the device allows it.
fn trainer_with(
    cfg: GanConfig,
    fusion: Fusion,
) -> (GanTrainer, Vec<f32>, Vec<u8>, Vec<f32>, Vec<f32>) {
    let exec = OrtExecutor::new(device()).expect("ONNX Runtime (run `cargo xtask setup`)");
    let mut t = GanTrainer::with_executor(cfg.clone(), Box::new(exec.with_fusion(fusion)))
        .expect("the step graphs");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let real: Vec<f32> = (0..cfg.batch * 784)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let labels = vec![0; cfg.batch];
    let zd = t.draw_noise(cfg.batch);
    let zg = t.draw_noise(cfg.batch);
    (t, real, labels, zd, zg)
}

/// One GAN step of `cfg` (on the CPU's usual fusion) per call.
fn stepper(cfg: GanConfig) -> impl FnMut() {
    stepper_with(cfg, None)
}

/// One GAN step per call, with the optimizer and BatchNorm in `fusion` where given.
fn stepper_with(cfg: GanConfig, fusion: Option<Fusion>) -> impl FnMut() {
    let (mut t, real, labels, zd, zg) = match fusion {
        Some(f) => trainer_with(cfg, f),
        None => trainer_for(cfg),
    };
    move || {
        t.step_with_noise(&real, &labels, &zd, &zg).unwrap();
    }
}

/// Mean milliseconds per call of each side after a warm-up, timed in alternating rounds so
/// that a change in the machine's load falls on every side alike.
fn alternating<const N: usize>(mut sides: [&mut dyn FnMut(); N], steps: usize) -> [f64; N] {
    for side in sides.iter_mut() {
        for _ in 0..5 {
            side();
        }
    }
    let (mut ms, rounds) = ([0.0; N], 5);
    for _ in 0..rounds {
        for (k, side) in sides.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..steps / rounds {
                side();
            }
            ms[k] += start.elapsed().as_secs_f64() * 1e3 / steps as f64;
        }
    }
    ms
}

/// Both step graphs' matrix products alone, per call: their Gemm nodes with the same shapes
/// and transposes, one session per graph as in the step, the operands held as runtime state
/// so that nothing is copied in per run.
fn gemms_only(cfg: &GanConfig) -> impl FnMut() {
    let mut exec = OrtExecutor::new(device()).expect("ONNX Runtime (run `cargo xtask setup`)");
    let graphs = [
        ("d_gemms.", d_step_graph(cfg, DType::F32, Fusion::Standard)),
        ("g_gemms.", g_step_graph(cfg, DType::F32, Fusion::Standard)),
    ];
    let mut handles = Vec::new();
    for (name, graph) in graphs {
        let gemms = graph
            .and_then(|g| g.gemms_only(name))
            .expect("the step graph");
        for (input, shape) in gemms.inputs() {
            let shape: Vec<usize> = (shape.iter())
                .map(|&d| usize::try_from(d).unwrap_or(cfg.batch))
                .collect();
            let data = vec![0.01; shape.iter().product()];
            exec.set_state(&input, &shape, &data).unwrap();
        }
        handles.push(exec.load(&gemms, name).unwrap());
    }
    move || {
        for &h in &handles {
            exec.run(h, &[], &[]).unwrap();
        }
    }
}

/// Steps each side times after its warm-up: ~4 s, enough to keep the ratio within a few percent.
const TIMED_STEPS: usize = 100;

fn pytorch_ms(threads: usize, steps: usize, device: &str) -> Option<f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/pytorch_step.py");
    let python = std::env::var("MCUGAN_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import torch"])
        .output()
        .ok();
    if !probe.is_some_and(|p| p.status.success()) {
        println!(
            "PyTorch: not importable by {python} (set MCUGAN_PYTHON), no baseline in this run"
        );
        return None;
    }
    let out = Command::new(&python)
        .args([
            script,
            "--threads",
            &threads.to_string(),
            "--steps",
            &steps.to_string(),
            "--device",
            device,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ms = text
        .lines()
        .find_map(|l| l.strip_prefix("ms_per_step "))
        .and_then(|v| v.trim().parse().ok());
    if ms.is_none() {
        println!(
            "PyTorch baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ms
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    // The device actually used: a CUDA request that fell back runs on the CPU.
    let dev = {
        let (mut t, real, labels, zd, zg) = trainer();
        let described = t.describe();
        println!("runtime: {described}");
        let dev = if described.contains("cuda") {
            "cuda"
        } else {
            "cpu"
        };
        c.bench_function(&format!("gan_step seed batch128 {dev}"), |b| {
            b.iter(|| t.step_with_noise(&real, &labels, &zd, &zg).unwrap())
        });
        dev
    };
    c.final_summary();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let [ours] = alternating([&mut stepper(GanConfig::seed_recipe())], TIMED_STEPS);
    println!("ours: {ours:.1} ms per seed GAN step (D + G, batch 128, {dev}, {threads} threads)");
    if let Some(pt) = pytorch_ms(threads, TIMED_STEPS, dev) {
        println!(
            "PyTorch: {pt:.1} ms per step; ratio ours/PyTorch = {:.2}",
            ours / pt
        );
    }
    let default = GanConfig::from_run(&checkpoint::RunConfig::preset(checkpoint::Preset::Lm3s6965));
    for (what, cfg) in [
        ("seed", GanConfig::seed_recipe()),
        ("lm3s6965 (the default)", default.clone()),
    ] {
        let [step, gemms] = alternating(
            [&mut stepper(cfg.clone()), &mut gemms_only(&cfg)],
            TIMED_STEPS,
        );
        println!(
            "{what}: step {step:.1} ms, its matrix products alone {gemms:.1} ms, in alternating rounds: the step is {:.2}x its GEMMs (target <= 1.3)",
            step / gemms
        );
    }
    // At the preset's first batch and at its late one.
    let late = GanConfig {
        batch: checkpoint::RunConfig::preset(checkpoint::Preset::Lm3s6965).largest_batch(),
        ..default.clone()
    };
    for cfg in [default, late].into_iter().filter(|_| dev == "cpu") {
        let batch = cfg.batch;
        let [fused, optimizer, standard] = alternating(
            [
                &mut stepper_with(cfg.clone(), Some(Fusion::Fused)),
                &mut stepper_with(cfg.clone(), Some(Fusion::Optimizer)),
                &mut stepper_with(cfg, Some(Fusion::Standard)),
            ],
            TIMED_STEPS,
        );
        println!(
            "lm3s6965 (the default) at batch {batch}: step with the optimizer and the layers fused {fused:.1} ms, the optimizer alone {optimizer:.1} ms, all in standard ONNX ops {standard:.1} ms: {:.2}x and {:.2}x",
            fused / standard,
            optimizer / standard
        );
    }
}
