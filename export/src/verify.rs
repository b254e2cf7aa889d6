//! Every export is checked: the firmware's integer engine, run here on the host, against the
//! float `generator.onnx` in tract-onnx on the same noise; PSNR, pixel errors, and whether the
//! project's MNIST classifier gives both images the same label.

use crate::float_model::FloatGenerator;
use crate::import::{self, InputLayout};
use crate::quantize::{INPUT_SCALE, quantize_input};
use anyhow::{Context, Result, anyhow};
use firmware::engine::{Kernel, forward};
use firmware::format::Model;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use std::path::Path;
use tract_onnx::prelude::*;

/// The figures of one verification.
#[derive(Clone, Debug, Serialize)]
pub struct Fidelity {
    pub samples: usize,
    /// PSNR of integer against float images (8-bit grey), averaged over samples.
    pub psnr_mean_db: f64,
    pub psnr_min_db: f64,
    pub mean_abs_error: f64,
    pub max_abs_error: u8,
    /// Share of samples on which the classifier gives both images the same label.
    pub label_agreement: Option<f64>,
}

/// The noise (clipped to what the int8 input can hold) and classes of the check: per class in
/// turn for a conditional model.
pub fn check_inputs(model: &FloatGenerator, n: usize, seed: u64) -> (Vec<f32>, Vec<Option<usize>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let limit = (127.0 * INPUT_SCALE) as f32;
    let z = (0..n * model.latent)
        .map(|_| {
            let v: f32 = StandardNormal.sample(&mut rng);
            v.clamp(-limit, limit)
        })
        .collect();
    let classes = (0..n)
        .map(|k| (model.classes > 0).then(|| k % model.classes))
        .collect();
    (z, classes)
}

/// The float model the integer engine is checked against, as an ONNX file tract runs: our
/// `generator.onnx` ([`InputLayout::ours`]), or a generator imported from elsewhere, fed in its
/// own input layout.
pub struct Reference<'a> {
    pub path: &'a Path,
    pub layout: InputLayout,
}

/// Runs the reference in tract on `model`'s inputs `z` and `classes` (in batches of the graph's
/// fixed batch size when it has one); pixels in [0, 1], `n × pixels`.
pub fn reference_images(
    reference: &Reference<'_>,
    model: &FloatGenerator,
    z: &[f32],
    classes: &[Option<usize>],
) -> Result<Vec<f32>> {
    let (path, layout) = (reference.path, &reference.layout);
    let latent = model.latent;
    let n = classes.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let batch = layout.batch.unwrap_or(n).max(1);
    let fail = |e: TractError| anyhow!("{}: tract cannot run it: {e:#}", path.display());
    // The file's own shapes may name a symbolic batch; the facts set here fix it.
    let mut onnx = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
        .model_for_path(path)
        .map_err(fail)?;
    let probe = import::feed(layout, model, &z[..latent], &classes[..1]).map_err(fail)?;
    for (k, t) in probe.iter().enumerate() {
        let mut shape: Vec<usize> = t.shape().to_vec();
        shape[0] = batch;
        onnx = onnx
            .with_input_fact(k, InferenceFact::dt_shape(t.datum_type(), shape))
            .map_err(fail)?;
    }
    let plan = onnx
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(fail)?;
    let mut pixels = Vec::new();
    for start in (0..n).step_by(batch) {
        // A short last batch is padded by repeating the last sample, then cut.
        let rows: Vec<usize> = (0..batch).map(|r| (start + r).min(n - 1)).collect();
        let zb: Vec<f32> = rows
            .iter()
            .flat_map(|&r| z[r * latent..(r + 1) * latent].iter().copied())
            .collect();
        let cb: Vec<Option<usize>> = rows.iter().map(|&r| classes[r]).collect();
        let out = plan
            .run(import::feed(layout, model, &zb, &cb).map_err(fail)?)
            .map_err(fail)?;
        let view = out[0].to_plain_array_view::<f32>().map_err(fail)?;
        let per = view.len() / batch;
        let keep = (n - start).min(batch) * per;
        pixels.extend(
            view.iter()
                .take(keep)
                .map(|&v| model.output.pixel_of_output(v)),
        );
    }
    Ok(pixels)
}

/// Runs the firmware's integer engine on the same inputs; grey levels 0–255, `n × pixels`.
pub fn integer_images(
    blob: &[u8],
    model: &FloatGenerator,
    z: &[f32],
    classes: &[Option<usize>],
) -> Result<Vec<u8>> {
    let decoded =
        Model::from_bytes(blob).map_err(|e| anyhow!("the firmware refuses the blob: {e}"))?;
    let width = decoded.max_width();
    let (mut a, mut b, mut out) = (
        vec![0u8; width],
        vec![0u8; width],
        vec![0u8; decoded.pixels()],
    );
    let mut images = Vec::with_capacity(classes.len() * decoded.pixels());
    for (k, class) in classes.iter().enumerate() {
        let x = quantize_input(model, &z[k * model.latent..(k + 1) * model.latent], *class);
        forward(&decoded, Kernel::Fast, &x, &mut a, &mut b, &mut out)
            .map_err(|e| anyhow!("engine: {e}"))?;
        images.extend(out.iter().map(|&s| decoded.grey(s)));
    }
    Ok(images)
}

/// Compares float (in [0, 1]) and integer (0–255) images; `labels` are the classifier's labels
/// for each, when a classifier is at hand.
pub fn compare(
    float: &[f32],
    integer: &[u8],
    pixels: usize,
    labels: Option<(&[u8], &[u8])>,
) -> Result<Fidelity> {
    if float.len() != integer.len() || float.is_empty() {
        return Err(anyhow!(
            "{} float and {} integer pixels",
            float.len(),
            integer.len()
        ))
        .context("comparing engines");
    }
    let n = float.len() / pixels;
    let (mut psnr_sum, mut psnr_min, mut abs_sum, mut max_abs) = (0.0, f64::INFINITY, 0.0, 0u8);
    for (f, q) in float.chunks(pixels).zip(integer.chunks(pixels)) {
        let mut se = 0.0;
        for (&fv, &qv) in f.iter().zip(q) {
            let e = qv as f64 - fv as f64 * 255.0;
            se += e * e;
            abs_sum += e.abs();
            max_abs = max_abs.max(e.abs().round().min(255.0) as u8);
        }
        let psnr = 10.0 * (255.0f64 * 255.0 / (se / pixels as f64).max(1e-10)).log10();
        psnr_sum += psnr;
        psnr_min = psnr_min.min(psnr);
    }
    let label_agreement = labels.map(|(a, b)| {
        a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
    });
    Ok(Fidelity {
        samples: n,
        psnr_mean_db: psnr_sum / n as f64,
        psnr_min_db: psnr_min,
        mean_abs_error: abs_sum / float.len() as f64,
        max_abs_error: max_abs,
        label_agreement,
    })
}
