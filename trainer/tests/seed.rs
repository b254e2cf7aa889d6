//! The seed architecture's sanity values, from the course it comes from: on a real MNIST batch
//! the first discriminator loss is 0.68 ± 0.05, the first generator loss 0.7 ± 0.1, and an
//! untrained generator's output (BatchNorm with batch statistics, as the course checks it) has a
//! standard deviation in (0.05, 0.15).

use trainer::data::{Dataset, EpochOrder, Split, fill_batch, workspace_mnist_dir};
use trainer::gan::{GanConfig, GanTrainer, generate_graph};
use trainer::graph::DType;
use trainer::runtime::{Device, Executor, OrtExecutor};

fn mnist() -> Dataset {
    Dataset::load_dir(&workspace_mnist_dir(), Split::Train)
        .unwrap_or_else(|e| panic!("MNIST is needed for this test ({e}); run `cargo xtask setup`"))
}

fn std_dev(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

#[test]
fn seed_architecture_first_losses_and_untrained_output() {
    let data = mnist();
    let cfg = GanConfig::seed_recipe();
    let mut t = GanTrainer::new(cfg.clone(), Device::Cpu).unwrap();

    // Untrained generator, batch statistics, 1000 samples.
    let n = 1000;
    let z = t.draw_noise(n);
    let mut exec = OrtExecutor::new(Device::Cpu).unwrap();
    for p in t.generator_state().unwrap() {
        exec.set_state(&p.name, &p.shape, &p.data).unwrap();
    }
    let h = exec
        .load(
            &generate_graph(&cfg, n as i64, true, DType::F32).unwrap(),
            "gen",
        )
        .unwrap();
    let img = exec.run(h, &[("z", &z)], &["image"]).unwrap().remove(0);
    let sd = std_dev(&img);
    assert!(
        sd > 0.05 && sd < 0.15,
        "untrained generator output std {sd}"
    );

    let order = EpochOrder::new(data.len(), 1, 0);
    let idx = order.batches(cfg.batch, true).next().unwrap();
    let mut px = vec![0.0; cfg.batch * 784];
    let mut labels = vec![0; cfg.batch];
    fill_batch(&data, idx, &mut px, &mut labels);
    let l = t.step(&px, &labels).unwrap();
    assert!((l.d_loss - 0.68).abs() <= 0.05, "first D loss {}", l.d_loss);
    assert!((l.g_loss - 0.7).abs() <= 0.1, "first G loss {}", l.g_loss);
    println!("seed first step: {l:?}, untrained output std {sd:.4}");
}
