//! Composite layers and losses built from primitives, so that only primitives need gradient
//! rules: Linear, BatchNorm (training and evaluation), stable softplus, BCE with logits,
//! softmax cross-entropy. BatchNorm in training mode can also be one fused node each way
//! ([`Op::FusedBatchNorm`], [`Op::FusedBatchNormGrad`]), the activations' gradients one
//! node each ([`Op::FusedLeakyReluGrad`]) and the BCE loss one node each way
//! ([`Op::FusedBce`], [`Op::FusedBceGrad`]); their kernels are here too.

use crate::graph::{DType, GResult, Graph, Id, Op};
use crate::optim::Fusion;

pub use checkpoint::config::BN_EPS;
/// PyTorch's BatchNorm1d momentum for the running statistics.
pub const BN_MOMENTUM: f64 = 0.1;

/// `x · Wᵀ + b` with `W` stored `[out, in]` as in PyTorch.
pub fn linear(g: &mut Graph, x: Id, w: Id, b: Id) -> GResult<Id> {
    g.gemm(x, w, Some(b), false, true)
}

/// What BatchNorm in training mode yields: the normalised output and the updated running
/// statistics (momentum 0.1, unbiased batch variance, as PyTorch).
pub struct BatchNormTrain {
    pub y: Id,
    pub running_mean: Id,
    pub running_var: Id,
}

/// BatchNorm over the batch axis of `x` `[N, C]` with batch statistics. With
/// [`Fusion::Fused`] (and f32) the normalisation and the running statistics are one
/// [`Op::FusedBatchNorm`] node, whose gradient is one [`Op::FusedBatchNormGrad`], instead of
/// two dozen nodes forward and a dozen back.
pub fn batch_norm_train(
    g: &mut Graph,
    x: Id,
    gamma: Id,
    beta: Id,
    running_mean: Id,
    running_var: Id,
    fusion: Fusion,
) -> GResult<BatchNormTrain> {
    let (n, c) = (g.shape(x)[0] as f64, g.shape(x)[1]);
    if fusion.layers() && g.dtype == DType::F32 {
        let xs = g.shape(x).to_vec();
        let outs = g.multi(
            Op::FusedBatchNorm,
            vec![x, gamma, beta, running_mean, running_var],
            &[xs, vec![c], vec![c]],
        );
        return Ok(BatchNormTrain {
            y: outs[0],
            running_mean: outs[1],
            running_var: outs[2],
        });
    }
    let mean = g.reduce_mean(x, &[0], true);
    let xc = g.sub(x, mean)?;
    let sq = g.mul(xc, xc)?;
    let var = g.reduce_mean(sq, &[0], true);
    let ve = g.add_scalar(var, BN_EPS)?;
    let sd = g.sqrt(ve);
    let xn = g.div(xc, sd)?;
    let scaled = g.mul(xn, gamma)?;
    let y = g.add(scaled, beta)?;
    let (mean_c, var_c) = (g.reshape(mean, &[c]), g.reshape(var, &[c]));
    // Running statistics: not differentiated (nothing downstream of the loss uses them).
    let rm_old = g.mul_scalar(running_mean, 1.0 - BN_MOMENTUM)?;
    let rm_new = g.mul_scalar(mean_c, BN_MOMENTUM)?;
    let rm = g.add(rm_old, rm_new)?;
    let rv_old = g.mul_scalar(running_var, 1.0 - BN_MOMENTUM)?;
    let rv_new = g.mul_scalar(var_c, variance_share(n))?;
    let rv = g.add(rv_old, rv_new)?;
    Ok(BatchNormTrain {
        y,
        running_mean: rm,
        running_var: rv,
    })
}

/// The share of a batch of `n`'s biased variance that the running variance takes: the
/// momentum times the unbiasing `n/(n − 1)`, as PyTorch.
fn variance_share(n: f64) -> f64 {
    BN_MOMENTUM * if n > 1.0 { n / (n - 1.0) } else { 1.0 }
}

/// Per-channel mean and biased variance of `x` `[n, c]`, and `1/√(var + ε)`.
fn batch_stats(x: &[f32], c: usize, mean: &mut [f32], var: &mut [f32], inv_sd: &mut [f32]) {
    let inv_n = 1.0 / (x.len() / c) as f32;
    mean.fill(0.0);
    for row in x.chunks_exact(c) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m *= inv_n);
    var.fill(0.0);
    for row in x.chunks_exact(c) {
        for ((s, &v), &m) in var.iter_mut().zip(row).zip(mean.iter()) {
            *s += (v - m) * (v - m);
        }
    }
    var.iter_mut().for_each(|s| *s *= inv_n);
    for (i, &v) in inv_sd.iter_mut().zip(var.iter()) {
        *i = 1.0 / (v + BN_EPS as f32).sqrt();
    }
}

/// [`Op::FusedBatchNorm`]'s arithmetic: `y = (x − mean)·γ/√(var + ε) + β` over the batch of
/// `x` `[n, c]`, and the running statistics moved towards the batch's as the standard form
/// does, in its f32 operations: `r·(1 − 0.1) + mean·0.1`, `r·(1 − 0.1) + var·(0.1·n/(n − 1))`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_kernel(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
    mean_out: &mut [f32],
    var_out: &mut [f32],
) {
    let c = gamma.len();
    let n = (x.len() / c) as f64;
    let (mut mean, mut var, mut scale) = (vec![0f32; c], vec![0f32; c], vec![0f32; c]);
    batch_stats(x, c, &mut mean, &mut var, &mut scale);
    scale.iter_mut().zip(gamma).for_each(|(s, &g)| *s *= g);
    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        for j in 0..c {
            yr[j] = (xr[j] - mean[j]) * scale[j] + beta[j];
        }
    }
    let (keep, take) = ((1.0 - BN_MOMENTUM) as f32, BN_MOMENTUM as f32);
    let take_var = variance_share(n) as f32;
    for j in 0..c {
        mean_out[j] = running_mean[j] * keep + mean[j] * take;
        var_out[j] = running_var[j] * keep + var[j] * take_var;
    }
}

/// [`Op::FusedLeakyReluGrad`]'s arithmetic: `dx = dy` where `x > 0`, `slope·dy` elsewhere
/// (`0` for ReLU, as the standard form's `Where` gives, whatever `dy` holds).
pub fn leaky_relu_grad_kernel(slope: f32, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for (o, (&x, &d)) in dx.iter_mut().zip(x.iter().zip(dy)) {
        *o = if x > 0.0 {
            d
        } else if slope == 0.0 {
            0.0
        } else {
            d * slope
        };
    }
}

/// [`Op::FusedBatchNormGrad`]'s arithmetic: from `dy` and the forward's `x` and `γ`, with
/// `x̂ = (x − mean)/√(var + ε)` recomputed, `dβ = Σ dy`, `dγ = Σ dy·x̂` and
/// `dx = γ/(n√(var + ε)) · (n·dy − dβ − x̂·dγ)`.
pub fn batch_norm_grad_kernel(
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let c = gamma.len();
    let n = (x.len() / c) as f32;
    let (mut mean, mut var, mut inv_sd) = (vec![0f32; c], vec![0f32; c], vec![0f32; c]);
    batch_stats(x, c, &mut mean, &mut var, &mut inv_sd);
    dgamma.fill(0.0);
    dbeta.fill(0.0);
    for (dr, xr) in dy.chunks_exact(c).zip(x.chunks_exact(c)) {
        for j in 0..c {
            dbeta[j] += dr[j];
            dgamma[j] += dr[j] * (xr[j] - mean[j]) * inv_sd[j];
        }
    }
    for ((out, dr), xr) in dx
        .chunks_exact_mut(c)
        .zip(dy.chunks_exact(c))
        .zip(x.chunks_exact(c))
    {
        for j in 0..c {
            let xn = (xr[j] - mean[j]) * inv_sd[j];
            out[j] = gamma[j] * inv_sd[j] / n * (n * dr[j] - dbeta[j] - xn * dgamma[j]);
        }
    }
}

/// The target of logit `i`: its own, or the one for all.
fn target(targets: &[f32], i: usize) -> f32 {
    targets[if targets.len() == 1 { 0 } else { i }]
}

/// [`Op::FusedBce`]'s arithmetic: the mean of `softplus(x) − t·x` over `logits`, with
/// `targets` as many or one for all; `softplus(x) = max(x, 0) + ln(1 + e^−|x|)`, finite for
/// any `x`, summed in f64.
pub fn bce_kernel(logits: &[f32], targets: &[f32]) -> f32 {
    let sum: f64 = (logits.iter().enumerate())
        .map(|(i, &x)| {
            let t = target(targets, i);
            let softplus = x.max(0.0) + (-x.abs()).exp().ln_1p();
            f64::from(softplus - t * x)
        })
        .sum();
    (sum / logits.len().max(1) as f64) as f32
}

/// [`Op::FusedBceGrad`]'s arithmetic: `dx = dloss·(sigmoid(x) − t)/n`, the sigmoid from
/// `e^−|x|` so that no exponential overflows.
pub fn bce_grad_kernel(dloss: f32, logits: &[f32], targets: &[f32], dx: &mut [f32]) {
    let scale = dloss / logits.len().max(1) as f32;
    for (i, (o, &x)) in dx.iter_mut().zip(logits).enumerate() {
        let t = target(targets, i);
        let e = (-x.abs()).exp();
        let sigmoid = if x >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        };
        *o = (sigmoid - t) * scale;
    }
}

/// BatchNorm with the running statistics (evaluation mode).
pub fn batch_norm_eval(
    g: &mut Graph,
    x: Id,
    gamma: Id,
    beta: Id,
    running_mean: Id,
    running_var: Id,
) -> GResult<Id> {
    let xc = g.sub(x, running_mean)?;
    let ve = g.add_scalar(running_var, BN_EPS)?;
    let sd = g.sqrt(ve);
    let scale = g.div(gamma, sd)?;
    let xn = g.mul(xc, scale)?;
    g.add(xn, beta)
}

/// `log(1 + eˣ)` computed as `relu(x) + log(1 + e^-|x|)`, finite for any `x`.
pub fn softplus(g: &mut Graph, x: Id) -> GResult<Id> {
    let r = g.relu(x);
    let a = g.abs(x);
    let na = g.neg(a);
    let e = g.exp(na);
    let e1 = g.add_scalar(e, 1.0)?;
    let l = g.log(e1);
    g.add(r, l)
}

/// Mean binary cross-entropy between `sigmoid(logits)` and `targets` (same shape, or
/// broadcastable): `softplus(x) − t·x`, as PyTorch's `BCEWithLogitsLoss`. With
/// [`Fusion::Fused`] (and f32, and targets shaped as the logits or one value) one
/// [`Op::FusedBce`] node, whose gradient is one node, instead of ten nodes and fifteen.
pub fn bce_with_logits(g: &mut Graph, logits: Id, targets: Id, fusion: Fusion) -> GResult<Id> {
    if fusion.layers() && g.dtype == DType::F32 && g.bce_targets_fit(logits, targets) {
        return g.fused_bce(logits, targets);
    }
    let sp = softplus(g, logits)?;
    let tx = g.mul(targets, logits)?;
    let l = g.sub(sp, tx)?;
    Ok(g.mean_all(l))
}

/// Mean softmax cross-entropy of `logits` `[N, K]` against one-hot (or soft) `targets` `[N, K]`.
pub fn softmax_cross_entropy(g: &mut Graph, logits: Id, targets: Id) -> GResult<Id> {
    let m = g.reduce_max(logits, &[1], true);
    let shifted = g.sub(logits, m)?;
    let e = g.exp(shifted);
    let s = g.reduce_sum(e, &[1], true);
    let lse = g.log(s);
    // -Σ t·(x − m − lse) = Σ t·lse − Σ t·(x − m), with Σ t = 1 per row.
    let logp = g.sub(shifted, lse)?;
    let tl = g.mul(targets, logp)?;
    let per_row = g.reduce_sum(tl, &[1], false);
    let mean = g.mean_all(per_row);
    Ok(g.neg(mean))
}
