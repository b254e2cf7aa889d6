//! The training loop end to end on a small MNIST subset: exact resume, refusal of bad or
//! mismatched checkpoints, learning, reports, and a hard stop on divergence.

use checkpoint::{Preset, RunConfig};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use trainer::Device;
use trainer::data::workspace_mnist_dir;
use trainer::train::{Options, Stop, TrainError, train};

fn small(epochs: u64) -> RunConfig {
    let mut cfg = RunConfig::preset(Preset::Lm3s6965);
    assert!(
        cfg.lr_decay.is_some() && cfg.ema > 0.0,
        "the tests run the preset's schedule"
    );
    cfg.g_widths = vec![16, 32];
    cfg.d_widths = vec![64, 32];
    cfg.z_dim = 8;
    cfg.batch = 64;
    // One batch size, so that every epoch is 10 steps (the growing batch has its own test).
    cfg.late_batch = None;
    cfg.subset = Some(640);
    cfg.epochs = Some(epochs);
    cfg.time_budget_s = None;
    cfg.sample_every = 1;
    cfg
}

fn opts(out: &Path, resume: bool) -> Options {
    Options {
        out: out.to_path_buf(),
        data_dir: workspace_mnist_dir(),
        device: Device::Cpu,
        resume,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    }
}

/// Trains `cfg` in `out` until the end of its first epoch, where the stop flag is set (at that
/// epoch's evaluation point).
fn stopped_after_one_epoch(mut cfg: RunConfig, out: &Path) -> trainer::train::Summary {
    cfg.eval_every = 1;
    let o = opts(out, false);
    let flag = o.stop.clone();
    let mut stop_now = |_: &mut trainer::GanTrainer| {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(serde_json::Value::Null)
    };
    train(&cfg, &o, Some(&mut stop_now)).unwrap()
}

#[test]
fn resume_equals_uninterrupted_to_the_bit() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let whole = train(&small(3), &opts(a.path(), false), None).unwrap();
    assert_eq!(whole.stop, Stop::Epochs);
    assert_eq!(whole.steps, 30);
    // Interrupted after its first epoch, as Ctrl-C would: the same configuration, so the same
    // learning-rate schedule, resumed.
    let first = stopped_after_one_epoch(small(3), b.path());
    assert_eq!((first.stop, first.steps), (Stop::Interrupted, 10));
    let rest = train(&small(3), &opts(b.path(), true), None).unwrap();
    assert_eq!(rest.steps, 30);
    let bits = |h: &[[f32; 5]]| h.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&rest.history),
        bits(&whole.history),
        "losses differ after resuming"
    );
    // The generator's moving average (what export reads) survives the resume exactly too.
    let averaged = |dir: &Path| {
        let run = checkpoint::Run::open(dir).unwrap();
        assert!(run.config.ema > 0.0, "the preset keeps an average");
        run.generator_tensors().unwrap()
    };
    assert_eq!(averaged(b.path()), averaged(a.path()));
}

#[test]
fn a_stop_request_saves_a_resumable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), false);
    o.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let s = train(&small(2), &o, None).unwrap();
    assert_eq!((s.stop, s.steps), (Stop::Interrupted, 0));
    let s = train(&small(2), &opts(dir.path(), true), None).unwrap();
    assert_eq!((s.stop, s.steps), (Stop::Epochs, 20));
}

#[test]
fn bad_or_mismatched_checkpoints_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    train(&small(1), &opts(dir.path(), false), None).unwrap();
    let ck = dir.path().join(checkpoint::TENSORS_FILE);
    let good = std::fs::read(&ck).unwrap();

    // A new run into the same folder would overwrite it.
    let err = train(&small(1), &opts(dir.path(), false), None).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<TrainError>(),
            Some(TrainError::RunExists { .. })
        ),
        "{err:#}"
    );

    // Flags that change the model.
    let mut other = small(2);
    other.g_widths = vec![16, 48];
    let err = train(&other, &opts(dir.path(), true), None).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<TrainError>(),
            Some(TrainError::ConfigMismatch {
                field: "g_widths",
                ..
            })
        ),
        "{err:#}"
    );
    assert!(format!("{err:#}").contains("g_widths"));
    assert_eq!(
        std::fs::read(&ck).unwrap(),
        good,
        "a refused resume touched the checkpoint"
    );

    // A truncated checkpoint.
    std::fs::write(&ck, &good[..good.len() / 3]).unwrap();
    let err = train(&small(2), &opts(dir.path(), true), None).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("checkpoint.safetensors") && msg.contains("corrupt or truncated"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(&ck).unwrap().len(),
        good.len() / 3,
        "the bad file was replaced"
    );

    // Nothing to resume.
    let empty = tempfile::tempdir().unwrap();
    let err = train(&small(1), &opts(empty.path(), true), None).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<TrainError>(),
            Some(TrainError::NothingToResume { .. })
        ),
        "{err:#}"
    );
}

#[test]
fn a_short_run_learns_and_writes_its_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small(4);
    cfg.subset = Some(1280);
    let s = train(&cfg, &opts(dir.path(), false), None).unwrap();
    let mean =
        |h: &[[f32; 5]], k: usize| h.iter().map(|r| r[k] as f64).sum::<f64>() / h.len() as f64;
    let (start, end) = (&s.history[..5], &s.history[s.history.len() - 5..]);
    // D's loss on real images, −ln D(real), falls below its starting value.
    assert!(
        -mean(end, 3).ln() < -mean(start, 3).ln(),
        "D(real) {} → {}",
        mean(start, 3),
        mean(end, 3)
    );
    let grid = image::open(dir.path().join("samples.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (10 * 58 + 2, 10 * 58 + 2));
    let plot = image::open(dir.path().join("losses.png")).unwrap();
    assert_eq!((plot.width(), plot.height()), (900, 500));
    let lines = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(
        lines.lines().count(),
        5,
        "one line per epoch and one at the end"
    );
    let onnx = std::fs::read(dir.path().join("generator.onnx")).unwrap();
    assert!(onnx.len() > 4 * (40 * 16 + 16 * 32 + 32 * 784));
}

#[test]
fn divergence_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    train(&small(1), &opts(dir.path(), false), None).unwrap();
    let ck = dir.path().join(checkpoint::TENSORS_FILE);
    let good = std::fs::read(&ck).unwrap();
    let mut wild = small(3);
    wild.lr_g = 1e6;
    wild.lr_d = 1e6;
    let err = train(&wild, &opts(dir.path(), true), None).unwrap_err();
    match err.downcast_ref::<TrainError>() {
        Some(TrainError::Diverged { step, .. }) => assert!((11..=20).contains(step), "step {step}"),
        _ => panic!("expected divergence, got {err:#}"),
    }
    assert!(
        err.to_string().contains("the last good checkpoint in"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&ck).unwrap(),
        good,
        "the last good checkpoint was replaced"
    );

    // Diverging before any checkpoint says there is none, and leaves none.
    let fresh = tempfile::tempdir().unwrap();
    let err = train(&wild, &opts(fresh.path(), false), None).unwrap_err();
    assert!(
        err.to_string().contains("there is none") && !err.to_string().contains("is kept"),
        "{err}"
    );
    assert!(!fresh.path().join(checkpoint::TENSORS_FILE).exists());
}

#[test]
fn a_batch_that_grows_mid_epoch_resumes_exactly() {
    // 640 images, 4 epochs, batches of 32 growing to 64 from 40% of the run: epoch 0 (to 25%)
    // takes 20 steps of 32; epoch 1 reaches 40% after 384 images (12 steps), then 4 steps of
    // 64 take the remaining 256; epochs 2 and 3 take 10 steps of 64 each.
    let grown = || {
        let mut cfg = small(4);
        cfg.batch = 32;
        cfg.late_batch = Some(64);
        cfg.late_batch_from = 0.4;
        cfg
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let whole = train(&grown(), &opts(a.path(), false), None).unwrap();
    assert_eq!((whole.stop, whole.steps), (Stop::Epochs, 20 + 16 + 10 + 10));
    // Stopped at the end of epoch 0, before the switch, then resumed across it.
    let first = stopped_after_one_epoch(grown(), b.path());
    assert_eq!((first.stop, first.steps), (Stop::Interrupted, 20));
    let rest = train(&grown(), &opts(b.path(), true), None).unwrap();
    let bits = |h: &[[f32; 5]]| h.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&rest.history), bits(&whole.history));
    let state = |dir: &Path| trainer::train::state_tensors(&checkpoint::Run::open(dir).unwrap());
    assert_eq!(state(b.path()).unwrap(), state(a.path()).unwrap());
}
