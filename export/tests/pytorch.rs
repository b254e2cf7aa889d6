//! Generators trained and exported by PyTorch (`fixtures/pytorch/`, written by its
//! `make_fixtures.py` with both of PyTorch's exporters): each imports, the imported float
//! generator reproduces PyTorch's own output for the fixture's inputs, and the integer engine
//! matches the file run in tract.

use export::import::{ImportOptions, import_onnx};
use export::pipeline::{ExportOptions, Source, Target, Weights, export};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/pytorch/{name}"))
}

/// The largest difference between the import and PyTorch's pixels for the fixture's inputs.
fn against_pytorch(name: &str) -> f64 {
    let path = fixture(&format!("{name}.onnx"));
    let imported =
        import_onnx(&path, &ImportOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(&format!("{name}.json"))).unwrap()).unwrap();
    let g = &imported.generator;
    let mut worst = 0f64;
    let zs = json["z"].as_array().unwrap();
    for (k, z) in zs.iter().enumerate() {
        let z: Vec<f32> = z
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let class = json["classes"]
            .as_array()
            .unwrap()
            .get(k)
            .map(|c| c.as_u64().unwrap() as usize);
        let ours = g.image(&g.input(&z, class));
        let theirs = json["pixels"][k].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(theirs) {
            let b = imported.output.pixel_of_output(b.as_f64().unwrap() as f32);
            worst = worst.max((a - b).abs() as f64);
        }
    }
    worst
}

fn exports(name: &str, weights: Weights) -> export::pipeline::Report {
    let dir = tempfile::tempdir().unwrap();
    export(
        &ExportOptions {
            source: Source::Onnx(fixture(&format!("{name}.onnx")), ImportOptions::default()),
            out: dir.path().join("model.bin"),
            weights,
            target: Target::Lm3s6965,
            samples: 200,
        },
        None,
    )
    .unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

#[test]
fn every_fixture_reproduces_pytorch_and_exports() {
    for name in [
        "seed-uncond-torchscript",
        "seed-cond-torchscript",
        "seed-uncond-dynamo",
        "seed-cond-dynamo",
        "tanh-label-torchscript",
    ] {
        let err = against_pytorch(name);
        assert!(
            err < 1e-4,
            "{name}: the import differs from PyTorch by {err}"
        );
        let report = exports(name, Weights::Int8);
        let f = &report.fidelity;
        eprintln!(
            "{name}: PyTorch vs import {err:.1e}, tract vs import {:.1e}, int8 {:.2} dB (worst {:.2})",
            report.import_max_abs_error.unwrap(),
            f.psnr_mean_db,
            f.psnr_min_db
        );
        assert!(report.import_max_abs_error.unwrap() < 1e-4);
        assert!(f.psnr_mean_db > 30.0, "{name}: {:.2} dB", f.psnr_mean_db);
    }
}

#[test]
fn the_trained_pytorch_generator_fits_the_board_at_the_default_precision() {
    let err = against_pytorch("trained-cond");
    assert!(err < 1e-4, "the import differs from PyTorch by {err}");
    let report = exports("trained-cond", Weights::Fast);
    let f = &report.fidelity;
    eprintln!(
        "trained-cond: {} bytes, {:.2} dB mean ({:.2} worst), mean pixel error {:.2}",
        report.bytes, f.psnr_mean_db, f.psnr_min_db, f.mean_abs_error
    );
    assert!(report.bytes <= report.budget.unwrap());
    assert!(f.psnr_mean_db > 25.0, "{:.2} dB", f.psnr_mean_db);
}
