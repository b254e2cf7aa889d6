//! The whole export on a real, briefly trained run: the blob the firmware decodes, the report
//! from a run of both engines, the picture, a missing float generator refused, and the flash
//! budget enforced.

use checkpoint::{Preset, RunConfig};
use export::pipeline::{ExportOptions, Target, Weights, export};
use firmware::format::Model;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use trainer::Device;
use trainer::data::workspace_mnist_dir;
use trainer::train::{Options, train};

/// Trains the default (projection) recipe with generator widths `g` for two epochs of 640 images.
fn trained_run(dir: &Path, g: &[usize]) {
    trained_run_with(dir, g, 8);
}

/// [`trained_run`] with `z` noise dimensions.
fn trained_run_with(dir: &Path, g: &[usize], z: usize) {
    let mut cfg = RunConfig::preset(Preset::Lm3s6965);
    cfg.g_widths = g.to_vec();
    cfg.d_widths = vec![64, 32];
    cfg.z_dim = z;
    cfg.batch = 64;
    cfg.subset = Some(640);
    cfg.epochs = Some(2);
    cfg.time_budget_s = None;
    let opts = Options {
        out: dir.to_path_buf(),
        data_dir: workspace_mnist_dir(),
        device: Device::Cpu,
        resume: false,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    };
    train(&cfg, &opts, None).expect("training a small run");
}

fn options(run: &Path, out: &Path, weights: Weights, target: Target) -> ExportOptions {
    ExportOptions {
        source: export::pipeline::Source::Checkpoint(run.to_path_buf()),
        out: out.to_path_buf(),
        weights,
        target,
        samples: 100,
    }
}

#[test]
fn a_trained_run_exports_to_a_blob_the_firmware_decodes_with_a_measured_report() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    trained_run(&run, &[16, 32]);
    // Without the float generator there is nothing to verify against: refused, nothing written.
    let onnx = run.join("generator.onnx");
    let kept = std::fs::read(&onnx).unwrap();
    std::fs::remove_file(&onnx).unwrap();
    let out8 = dir.path().join("int8/model.bin");
    let err = export(&options(&run, &out8, Weights::Int8, Target::Lm3s6965), None).unwrap_err();
    assert!(err.to_string().contains("generator.onnx: missing"), "{err}");
    assert!(!out8.exists());
    std::fs::write(&onnx, kept).unwrap();
    let r8 = export(&options(&run, &out8, Weights::Int8, Target::Lm3s6965), None).unwrap();

    let blob = std::fs::read(&out8).unwrap();
    assert_eq!(blob.len(), r8.bytes);
    let model = Model::from_bytes(&blob).expect("the firmware accepts the blob");
    assert_eq!(model.macs(), r8.macs);
    assert_eq!(model.input_len(), 8 + 10);
    assert_eq!(
        r8.layer_shapes,
        vec![(18, 16), (16, 32), (32, 784)],
        "folded layers, BatchNorm gone"
    );
    assert_eq!(r8.fidelity.samples, 100);
    assert!(r8.fidelity.label_agreement.is_none(), "no classifier given");
    assert!(
        r8.fidelity.psnr_mean_db > 30.0,
        "int8 PSNR {:.1} dB",
        r8.fidelity.psnr_mean_db
    );
    assert!(r8.fidelity.psnr_min_db <= r8.fidelity.psnr_mean_db);

    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out8.with_file_name("export-report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["bytes"], r8.bytes);
    let png = image::open(out8.with_file_name("float-vs-fixed.png")).unwrap();
    assert!(png.width() > 28 && png.height() > 28);

    // int4 halves the weights and costs fidelity, as the report must show.
    let out4 = dir.path().join("int4/model.bin");
    let r4 = export(&options(&run, &out4, Weights::Int4, Target::None), None).unwrap();
    assert!(r4.bytes < r8.bytes, "{} vs {}", r4.bytes, r8.bytes);
    assert!(
        r4.fidelity.psnr_mean_db < r8.fidelity.psnr_mean_db,
        "int4 {:.1} dB vs int8 {:.1} dB",
        r4.fidelity.psnr_mean_db,
        r8.fidelity.psnr_mean_db
    );
    Model::from_bytes(&std::fs::read(&out4).unwrap()).expect("int4 blob decodes");

    // `fast`: int4 where 90% of the MACs are (here the last layer, 97% of them), its input
    // narrowed to 7 bits; the layers near the noise stay int8.
    let out_fast = dir.path().join("fast/model.bin");
    let rf = export(
        &options(&run, &out_fast, Weights::Fast, Target::Lm3s6965),
        None,
    )
    .unwrap();
    assert_eq!(rf.layer_kinds, ["int8", "int8", "int4"]);
    let blob = std::fs::read(&out_fast).unwrap();
    let model = Model::from_bytes(&blob).expect("fast blob decodes");
    let clamps: Vec<i16> = model.layers().iter().map(|l| l.clamp_max).collect();
    assert_eq!(clamps, [255, 127, 127]);
    assert!(rf.bytes < r8.bytes && rf.bytes > r4.bytes);
}

#[test]
fn the_default_preset_exports_within_the_lm3s6965_budget() {
    // The preset's generator (its D is narrowed: export reads only G) with `export`'s default
    // weights.
    let preset = RunConfig::preset(Preset::Lm3s6965);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    trained_run_with(&run, &preset.g_widths, preset.z_dim);
    let out = dir.path().join("model.bin");
    let report = export(&options(&run, &out, Weights::Fast, Target::Lm3s6965), None)
        .expect("the default preset fits its board");
    assert!(report.bytes <= Target::Lm3s6965.budget().unwrap());
    assert_eq!(
        std::fs::metadata(&out).unwrap().len() as usize,
        report.bytes
    );
}

#[test]
fn a_model_over_the_flash_budget_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // 18 → 512 → 1024 → 784: about 1.3 M weights, far over 200 KiB at int8.
    trained_run(&run, &[512, 1024]);
    let out = dir.path().join("big/model.bin");
    let err = export(&options(&run, &out, Weights::Int8, Target::Lm3s6965), None)
        .expect_err("over budget");
    let msg = format!("{err:#}");
    assert!(msg.contains("budget"), "{msg}");
    assert!(!out.exists(), "a refused model leaves no file");
}
