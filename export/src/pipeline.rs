//! `mcugan export`: checkpoint → folded float generator → calibrated integer model → blob,
//! then the verification every export runs, written as JSON and as a PNG.

use crate::float_model::FloatGenerator;
use crate::import::{ImportOptions, Imported, InputLayout, import_onnx};
use crate::load::load_generator;
use crate::quantize::{
    activation_max, calibrate, calibration_inputs, quantize, to_blob, weight_kinds,
};
use crate::verify::{self, Fidelity, Reference};
use anyhow::{Result, bail};
use checkpoint::{IMAGE_DIM, IMAGE_SIDE};
use firmware::format::WeightKind;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Weight precision: all int8; all int4; `mixed`, int8 with int4 for the largest layers until
/// the blob fits the target's budget; or `fast`, int4 for the largest layers until they hold
/// [`FAST_SHARE`] of the multiply-accumulates, their inputs in 7 bits: the firmware's int4
/// kernel takes about a third of the int8 one's instructions per MAC, and the small layers
/// near the noise, where int4 costs the most quality, stay int8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Weights {
    Int8,
    Int4,
    Mixed,
    Fast,
}

/// The share of the MACs `--weights fast` moves to int4.
pub const FAST_SHARE: f64 = 0.9;

impl std::str::FromStr for Weights {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "int8" => Ok(Weights::Int8),
            "int4" => Ok(Weights::Int4),
            "mixed" => Ok(Weights::Mixed),
            "fast" => Ok(Weights::Fast),
            _ => Err(format!(
                "unknown weights `{s}`: expected int8, int4, mixed or fast"
            )),
        }
    }
}

/// Where the model must fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The LM3S6965 board ([`boards::LM3S6965`]).
    Lm3s6965,
    /// The Pico with an SSD1306 ([`boards::PICO`]).
    Pico,
    /// No board: no budget.
    None,
}

impl Target {
    /// The board in the boards table.
    pub fn board(self) -> Option<&'static boards::Board> {
        match self {
            Target::Lm3s6965 => Some(&boards::LM3S6965),
            Target::Pico => Some(&boards::PICO),
            Target::None => None,
        }
    }

    /// Largest blob the board's flash leaves the model (the boards table's `model_budget`).
    pub fn budget(self) -> Option<usize> {
        self.board().map(|b| b.model_budget)
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lm3s6965" => Ok(Target::Lm3s6965),
            "pico" => Ok(Target::Pico),
            "none" => Ok(Target::None),
            _ => Err(format!(
                "unknown target `{s}`: expected lm3s6965, pico or none"
            )),
        }
    }
}

/// Where the float generator comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A run folder written by `mcugan train`.
    Checkpoint(PathBuf),
    /// An ONNX generator trained elsewhere ([`crate::import`]).
    Onnx(PathBuf, ImportOptions),
}

pub struct ExportOptions {
    pub source: Source,
    pub out: PathBuf,
    pub weights: Weights,
    pub target: Target,
    /// Noise vectors the verification runs (the calibration uses four times as many, apart).
    pub samples: usize,
}

/// What an export wrote and measured (`export-report.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: PathBuf,
    /// The run folder or ONNX file exported.
    pub source: PathBuf,
    /// For an ONNX file: the input layout, class encoding, output function and image size
    /// recognised, and each layer with what was folded into it.
    pub recognised: Option<Imported>,
    /// For an ONNX file: the largest pixel difference (of 1) between the imported float
    /// generator and the file run in tract; the check that the import read it right.
    pub import_max_abs_error: Option<f64>,
    pub bytes: usize,
    pub budget: Option<usize>,
    pub weights: Weights,
    pub layer_kinds: Vec<String>,
    pub layer_shapes: Vec<(usize, usize)>,
    pub macs: u32,
    pub activation_ranges: Vec<f32>,
    pub fidelity: Fidelity,
}

/// Labels images (`n × 784`, in [0, 1]) with the project's classifier.
pub type Labeler<'a> = dyn FnMut(&[f32]) -> Result<Vec<u8>> + 'a;

/// The largest pixel difference allowed between an imported generator and its file in tract.
pub const IMPORT_TOLERANCE: f64 = 1e-3;

pub fn export(opts: &ExportOptions, labeler: Option<&mut Labeler>) -> Result<Report> {
    let (model, source, imported, onnx) = match &opts.source {
        Source::Checkpoint(dir) => {
            let (run, model) = load_generator(dir)?;
            let onnx = run.generator_onnx();
            if !onnx.exists() {
                bail!(
                    "{}: missing; `mcugan train` writes the float generator beside each checkpoint, and the export is checked against it",
                    onnx.display()
                );
            }
            (model, dir.clone(), None, onnx)
        }
        Source::Onnx(path, options) => {
            let imported = import_onnx(path, options)?;
            (
                imported.generator.clone(),
                path.clone(),
                Some(imported),
                path.clone(),
            )
        }
    };
    let (width, height) = imported
        .as_ref()
        .map_or((IMAGE_SIDE, IMAGE_SIDE), |i| (i.width, i.height));
    let pixels = width * height;
    let reference = Reference {
        path: &onnx,
        layout: match &imported {
            Some(i) => i.layout.clone(),
            None => InputLayout::ours(model.latent, model.classes),
        },
    };
    // Before anything is written: the import must reproduce the file.
    let (z, classes) = verify::check_inputs(&model, opts.samples, 0x5EED);
    let float = verify::reference_images(&reference, &model, &z, &classes)?;
    let import_max_abs_error = match &imported {
        Some(_) => {
            let mut worst = 0f64;
            for (k, class) in classes.iter().enumerate() {
                let x = model.input(&z[k * model.latent..(k + 1) * model.latent], *class);
                for (a, b) in model
                    .image(&x)
                    .iter()
                    .zip(&float[k * pixels..(k + 1) * pixels])
                {
                    worst = worst.max((a - b).abs() as f64);
                }
            }
            if worst > IMPORT_TOLERANCE {
                bail!(
                    "{}: the imported generator differs from the file run in tract by up to {worst:.4} of a pixel (tolerance {IMPORT_TOLERANCE}): the import misread the graph",
                    onnx.display()
                );
            }
            Some(worst)
        }
        None => None,
    };
    let calib = calibrate(
        &model,
        &calibration_inputs(&model, opts.samples * 4, 0xCA11B),
    );
    let kinds = choose_kinds(
        &model,
        &calib,
        opts.weights,
        opts.target.budget(),
        (width, height),
    )?;
    let act_max = activation_max(&kinds, opts.weights == Weights::Fast);
    let spec = quantize(&model, &calib, &kinds, &act_max, width, height)?.spec;
    let blob = to_blob(&spec)?;
    if let Some(budget) = opts.target.budget().filter(|&b| blob.len() > b) {
        bail!(
            "the model is {} bytes, over the {:?} budget of {budget} bytes; try --weights mixed or int4, or train a smaller generator (--g-widths)",
            blob.len(),
            opts.target
        );
    }
    let integer = verify::integer_images(&blob, &model, &z, &classes)?;
    crate::write_file(&opts.out, &blob)?;
    // The classifier reads 28×28 digits.
    let labels = match labeler.filter(|_| pixels == IMAGE_DIM) {
        Some(label) => {
            let as_float: Vec<f32> = integer.iter().map(|&g| g as f32 / 255.0).collect();
            Some((label(&float)?, label(&as_float)?))
        }
        None => None,
    };
    let fidelity = verify::compare(
        &float,
        &integer,
        pixels,
        labels.as_ref().map(|(a, b)| (a.as_slice(), b.as_slice())),
    )?;
    let dir = opts
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if pixels == IMAGE_DIM {
        let sheet = side_by_side(&float, &integer, 10);
        checkpoint::sheet::sample_grid(&sheet, 10, 3, &dir.join("float-vs-fixed.png"))?;
    }
    let decoded = firmware::format::Model::from_bytes(&blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = Report {
        model: opts.out.clone(),
        source,
        recognised: imported,
        import_max_abs_error,
        bytes: blob.len(),
        budget: opts.target.budget(),
        weights: opts.weights,
        layer_kinds: kinds
            .iter()
            .map(|k| format!("{k:?}").to_lowercase())
            .collect(),
        layer_shapes: model.layers.iter().map(|l| (l.inputs, l.outputs)).collect(),
        macs: decoded.macs(),
        activation_ranges: calib.max_abs.clone(),
        fidelity,
    };
    crate::write_file(
        &dir.join("export-report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    Ok(report)
}

/// Per-layer precision for the requested mode; `mixed` moves the largest layers to int4, one
/// at a time, until the blob fits.
fn choose_kinds(
    model: &FloatGenerator,
    calib: &crate::quantize::Calibration,
    weights: Weights,
    budget: Option<usize>,
    (width, height): (usize, usize),
) -> Result<Vec<WeightKind>> {
    let all = |k| vec![k; model.layers.len()];
    match weights {
        Weights::Int8 => Ok(all(WeightKind::Int8)),
        Weights::Int4 => Ok(all(WeightKind::Int4)),
        Weights::Fast => {
            let total: usize = model.layers.iter().map(|l| l.inputs * l.outputs).sum();
            let (mut int4, mut moved) = (Vec::new(), 0);
            for k in largest_first(model) {
                if moved as f64 >= FAST_SHARE * total as f64 {
                    break;
                }
                moved += model.layers[k].inputs * model.layers[k].outputs;
                int4.push(k);
            }
            Ok(weight_kinds(model, &int4))
        }
        Weights::Mixed => {
            let by_size = largest_first(model);
            let mut int4 = Vec::new();
            loop {
                let kinds = weight_kinds(model, &int4);
                let act_max = activation_max(&kinds, false);
                let size =
                    to_blob(&quantize(model, calib, &kinds, &act_max, width, height)?.spec)?.len();
                if budget.is_none_or(|b| size <= b) || int4.len() == by_size.len() {
                    return Ok(kinds);
                }
                int4.push(by_size[int4.len()]);
            }
        }
    }
}

/// Layer indices, the most multiply-accumulates first.
fn largest_first(model: &FloatGenerator) -> Vec<usize> {
    let mut by_size: Vec<usize> = (0..model.layers.len()).collect();
    by_size.sort_by_key(|&k| std::cmp::Reverse(model.layers[k].inputs * model.layers[k].outputs));
    by_size
}

/// Rows of `cols` float samples, each followed by the same samples from the integer engine.
fn side_by_side(float: &[f32], integer: &[u8], cols: usize) -> Vec<f32> {
    let n = (float.len() / IMAGE_DIM).min(2 * cols);
    let mut out = Vec::new();
    for start in (0..n).step_by(cols) {
        let end = (start + cols).min(n);
        out.extend_from_slice(&float[start * IMAGE_DIM..end * IMAGE_DIM]);
        out.extend(
            integer[start * IMAGE_DIM..end * IMAGE_DIM]
                .iter()
                .map(|&g| g as f32 / 255.0),
        );
    }
    out
}
