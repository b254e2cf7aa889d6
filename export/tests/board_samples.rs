//! Samples as the board shows them: pixel for pixel what the app renders on both kinds of
//! screen; a corrupt blob refused naming its file; and scored, a blob agrees with the float
//! generator it was exported from.

use export::board_samples::{Screen, board_samples, read_blob};
use export::synth::random_model;
use firmware::app::{App, Button, DIGIT_ORIGIN, NoClock, SCALE, SeedMode};
use firmware::format::Model;
use firmware::frame::{Frame, MonoFrame};

#[test]
fn samples_are_what_the_app_draws_on_the_grey_and_the_one_bit_screen() {
    let blob = random_model(5, 32, 10, &[32, 64, 784]).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    let (n, side) = (12u32, 28usize);
    let (grey, labels) = board_samples(&model, Screen::Grey, 0, n as usize).unwrap();
    let (mono, _) = board_samples(&model, Screen::Mono, 0, n as usize).unwrap();
    assert_eq!(labels, (0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>());
    // The board's SELECT number i, on digit i % 10, draws seed i.
    let mut app = App::<1024>::new(&blob, SeedMode::Sequence(0));
    let mut mono_pixels_between = 0;
    for (i, &wanted) in labels.iter().enumerate() {
        while app.choice() != firmware::noise::Choice::Digit(wanted) {
            app.handle(Button::Right, &mut NoClock);
        }
        app.handle(Button::Select, &mut NoClock);
        let (mut frame, mut bits) = (Frame::new(), MonoFrame::new());
        let Ok(()) = app.render(&mut frame);
        let Ok(()) = app.render(&mut bits);
        let s = SCALE as usize;
        for y in 0..side {
            for x in 0..side {
                let at = |dx: usize, dy: usize| {
                    (
                        DIGIT_ORIGIN.x as usize + s * x + dx,
                        DIGIT_ORIGIN.y as usize + s * y + dy,
                    )
                };
                let (sx, sy) = at(0, 0);
                let k = i * side * side + y * side + x;
                assert_eq!(
                    grey[k],
                    frame.level(sx, sy) as f32 / 15.0,
                    "sample {i} ({x}, {y})"
                );
                let lit = (0..s * s)
                    .filter(|&j| {
                        let (px, py) = at(j % s, j / s);
                        bits.is_on(px, py)
                    })
                    .count();
                assert_eq!(
                    mono[k],
                    lit as f32 / (s * s) as f32,
                    "sample {i} ({x}, {y})"
                );
                mono_pixels_between += (mono[k] > 0.0 && mono[k] < 1.0) as usize;
            }
        }
    }
    assert!(
        mono_pixels_between > 0,
        "dithering gives partly lit pixels somewhere"
    );
    assert_ne!(grey, mono);
}

#[test]
fn a_corrupt_or_truncated_blob_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = random_model(1, 8, 10, &[16, 784]).unwrap();
    let path = dir.path().join("model.bin");
    std::fs::write(&path, &good).unwrap();
    assert_eq!(read_blob(&path).unwrap(), good);
    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("not a blob", b"hello, board".to_vec()),
        ("flipped byte", {
            let mut b = good.clone();
            let i = b.len() / 2;
            b[i] ^= 0x40;
            b
        }),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let err = format!("{:#}", read_blob(&path).unwrap_err());
        assert!(
            err.contains(&path.display().to_string()) && err.contains("not a model"),
            "{what}: {err}"
        );
    }
    let missing = dir.path().join("missing.bin");
    let err = format!("{:#}", read_blob(&missing).unwrap_err());
    assert!(err.contains("missing.bin"), "{err}");
}

/// `mcugan eval --model` scores what `board_samples` draws; here the whole evaluation (a
/// classifier trained on a subset, Fréchet distance, per-class accuracy) on a briefly trained
/// run, its blob against its float generator.
#[test]
fn a_blob_scores_like_the_float_generator_it_was_exported_from() {
    use checkpoint::{Preset, RunConfig};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use trainer::Device;
    use trainer::data::{Dataset, Split, workspace_mnist_dir};
    use trainer::eval::{classifier, real_stats, score, score_samples};
    use trainer::train::{Options, state_tensors, train};
    use trainer::{GanConfig, GanTrainer};

    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut cfg = RunConfig::preset(Preset::Lm3s6965);
    cfg.g_widths = vec![64, 128];
    cfg.d_widths = vec![128, 64];
    cfg.subset = Some(6400);
    cfg.epochs = Some(30);
    cfg.time_budget_s = None;
    cfg.sample_every = 30;
    cfg.lr_g = 5e-4;
    cfg.lr_d = 5e-4;
    let opts = Options {
        out: run.clone(),
        data_dir: workspace_mnist_dir(),
        device: Device::Cpu,
        resume: false,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    };
    train(&cfg, &opts, None).unwrap();
    let blob_path = dir.path().join("model.bin");
    export::pipeline::export(
        &export::pipeline::ExportOptions {
            source: export::pipeline::Source::Checkpoint(run.clone()),
            out: blob_path.clone(),
            weights: export::pipeline::Weights::Int8,
            target: export::pipeline::Target::None,
            samples: 100,
        },
        None,
    )
    .unwrap();

    let data = workspace_mnist_dir();
    let train_set = Dataset::load_dir(&data, Split::Train).unwrap().take(10_000);
    let test_set = Dataset::load_dir(&data, Split::Test).unwrap().take(2_000);
    let cache = dir.path().join("classifier");
    let mut scorer = classifier(&cache, &train_set, &test_set, Device::Cpu, 0.93, false).unwrap();
    let real = real_stats(&mut scorer, &train_set, &test_set).unwrap();
    let n = 2_000;

    let ck = checkpoint::Run::open(&run).unwrap();
    let mut gan = GanTrainer::new(GanConfig::from_run(&ck.config), Device::Cpu).unwrap();
    gan.load_state(&state_tensors(&ck).unwrap()).unwrap();
    let float = score(&mut gan, &mut scorer, &real, n, 1234).unwrap();

    let bytes = read_blob(&blob_path).unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let mut sample = |start: usize, m: usize| board_samples(&model, Screen::Grey, start as u32, m);
    let board = score_samples(&mut sample, Some(10), &mut scorer, &real, n).unwrap();

    // Tolerances: 16 grey levels and int8 weights move a sample little; the two draw their
    // noise from different generators, so the scores also differ by sampling error.
    println!("float:\n{}board:\n{}", float.table(), board.table());
    let (fa, fb) = (float.fid, board.fid);
    assert!(
        (fa - fb).abs() <= 0.15 * fa + 2.0,
        "Fréchet distance: float {fa:.2}, board {fb:.2}"
    );
    let (aa, ab) = (
        float.mean_class_accuracy.unwrap(),
        board.mean_class_accuracy.unwrap(),
    );
    assert!(
        (aa - ab).abs() <= 0.05,
        "intended class: float {aa:.3}, board {ab:.3}"
    );
    assert!(
        aa > 0.5,
        "the run learned its classes ({aa:.3}), or the comparison says little"
    );
}
