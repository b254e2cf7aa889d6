//! Error-compensating rounding for low-bit weights (GPTQ, Frantar et al., 2022).
//!
//! Rounding each int4 weight to its nearest level throws away most of a 192-wide row's
//! information (16.6 dB PSNR on the default model). GPTQ rounds one input column at a time and
//! moves each rounding error onto the columns not yet rounded, weighted by how the layer's
//! calibration inputs correlate (`H = E[x xᵀ]`), so that the layer's *output* error is what is
//! minimised rather than the weights'. Per-row scales are chosen first, by a search over clip
//! ratios under the same `H`-weighted error.

use nalgebra::{DMatrix, DVector};

/// Relative damping added to `H`'s diagonal (GPTQ's default), so that it stays invertible when
/// inputs are correlated or dead.
const DAMPING: f64 = 0.01;
/// Clip ratios tried for each row's scale: `max|w| · r / qmax` for `r` in 0.30, 0.32, … 1.00.
const CLIP_STEPS: usize = 36;

/// The second moment `E[x xᵀ]` of a layer's inputs over the calibration set.
pub fn second_moment(inputs: &[&[f32]], width: usize) -> DMatrix<f64> {
    let n = inputs.len().max(1);
    let x = DMatrix::from_fn(width, inputs.len(), |i, s| inputs[s][i] as f64);
    (&x * x.transpose()) / n as f64
}

/// Quantized rows: levels in `±qmax` and one scale per row (`w ≈ scale · level`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rounded {
    pub levels: Vec<i8>,
    pub scales: Vec<f64>,
}

/// Rounds `weight` (`outputs × inputs`, row-major) to integer levels in `±qmax`, minimising
/// `Σ_rows (w − ŵ)ᵀ H (w − ŵ)` greedily column by column. Rows of zeros get scale 1.
pub fn round(
    weight: &[f32],
    inputs: usize,
    outputs: usize,
    h: &DMatrix<f64>,
    qmax: f64,
) -> Rounded {
    assert_eq!(
        weight.len(),
        inputs * outputs,
        "weight is not outputs × inputs"
    );
    assert_eq!(h.shape(), (inputs, inputs), "H is not inputs × inputs");
    let mut h = h.clone();
    // Inputs that never fire carry no information: their weights are free, so zero them.
    let dead: Vec<bool> = (0..inputs).map(|i| h[(i, i)] <= 0.0).collect();
    let mean_diag = (0..inputs).map(|i| h[(i, i)]).sum::<f64>() / inputs.max(1) as f64;
    let damp = DAMPING * mean_diag.max(f64::MIN_POSITIVE);
    for i in 0..inputs {
        if dead[i] {
            h[(i, i)] = 1.0;
        }
        h[(i, i)] += damp;
    }
    let u = inverse_cholesky_upper(&h);
    let diag: DVector<f64> = h.diagonal();

    let mut levels = vec![0i8; inputs * outputs];
    let mut scales = vec![1.0; outputs];
    let mut row = vec![0f64; inputs];
    for o in 0..outputs {
        for ((r, &w), &d) in row
            .iter_mut()
            .zip(&weight[o * inputs..(o + 1) * inputs])
            .zip(&dead)
        {
            *r = if d { 0.0 } else { w as f64 };
        }
        let scale = best_scale(&row, &diag, qmax);
        scales[o] = scale;
        let out = &mut levels[o * inputs..(o + 1) * inputs];
        for i in 0..inputs {
            let q = (row[i] / scale).round().clamp(-qmax, qmax);
            out[i] = q as i8;
            let err = (row[i] - q * scale) / u[(i, i)];
            for j in i + 1..inputs {
                row[j] -= err * u[(i, j)];
            }
        }
    }
    Rounded { levels, scales }
}

/// The scale whose plain rounding of `row` has the least `Σ H_ii (w − ŵ)²`.
fn best_scale(row: &[f64], diag: &DVector<f64>, qmax: f64) -> f64 {
    let max = row.iter().fold(0f64, |m, w| m.max(w.abs()));
    if max == 0.0 {
        return 1.0;
    }
    (0..CLIP_STEPS)
        .map(|k| max * (1.0 - 0.02 * k as f64) / qmax)
        .map(|s| {
            let err: f64 = row
                .iter()
                .zip(diag.iter())
                .map(|(&w, &d)| d * (w - (w / s).round().clamp(-qmax, qmax) * s).powi(2))
                .sum();
            (s, err)
        })
        .fold((max / qmax, f64::INFINITY), |best, c| {
            if c.1 < best.1 { c } else { best }
        })
        .0
}

/// The upper triangular `U` with `H⁻¹ = Uᵀ U` (GPTQ's `cholesky(inverse(H), upper=True)`).
fn inverse_cholesky_upper(h: &DMatrix<f64>) -> DMatrix<f64> {
    let n = h.nrows();
    let inverse = h
        .clone()
        .cholesky()
        .map(|c| c.inverse())
        .unwrap_or_else(|| DMatrix::identity(n, n));
    inverse
        .cholesky()
        .map(|c| c.l().transpose())
        .unwrap_or_else(|| DMatrix::identity(n, n))
}
