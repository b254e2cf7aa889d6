//! Composite layers and losses built from primitives, so that only primitives need gradient
//! rules: Linear, BatchNorm (training and evaluation), stable softplus, BCE with logits,
//! softmax cross-entropy. BatchNorm in training mode can also be one fused node each way
//! ([`Op::FusedBatchNorm`], [`Op::FusedBatchNormGrad`]), whose kernels are here too.

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
/// [`Fusion::Fused`] (and f32) the normalisation is one [`Op::FusedBatchNorm`] node, whose
/// gradient is one [`Op::FusedBatchNormGrad`], instead of a dozen nodes each way.
pub fn batch_norm_train(
    g: &mut Graph,
    x: Id,
    gamma: Id,
    beta: Id,
    running_mean: Id,
    running_var: Id,
    fusion: Fusion,
) -> GResult<BatchNormTrain> {
    let n = g.shape(x)[0] as f64;
    let c = g.shape(x)[1];
    let (y, mean_c, var_c) = if fusion.batch_norm() && g.dtype == DType::F32 {
        let xs = g.shape(x).to_vec();
        let outs = g.multi(
            Op::FusedBatchNorm,
            vec![x, gamma, beta],
            &[xs, vec![c], vec![c]],
        );
        (outs[0], outs[1], outs[2])
    } else {
        let mean = g.reduce_mean(x, &[0], true);
        let xc = g.sub(x, mean)?;
        let sq = g.mul(xc, xc)?;
        let var = g.reduce_mean(sq, &[0], true);
        let ve = g.add_scalar(var, BN_EPS)?;
        let sd = g.sqrt(ve);
        let xn = g.div(xc, sd)?;
        let scaled = g.mul(xn, gamma)?;
        let y = g.add(scaled, beta)?;
        (y, g.reshape(mean, &[c]), g.reshape(var, &[c]))
    };
    // Running statistics: not differentiated (nothing downstream of the loss uses them).
    let rm_old = g.mul_scalar(running_mean, 1.0 - BN_MOMENTUM)?;
    let rm_new = g.mul_scalar(mean_c, BN_MOMENTUM)?;
    let rm = g.add(rm_old, rm_new)?;
    let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
    let rv_old = g.mul_scalar(running_var, 1.0 - BN_MOMENTUM)?;
    let rv_new = g.mul_scalar(var_c, BN_MOMENTUM * unbias)?;
    let rv = g.add(rv_old, rv_new)?;
    Ok(BatchNormTrain {
        y,
        running_mean: rm,
        running_var: rv,
    })
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
/// `x` `[n, c]`, with the batch's `mean` and biased `var` (for the running statistics).
pub fn batch_norm_kernel(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    mean: &mut [f32],
    var: &mut [f32],
) {
    let c = gamma.len();
    let mut scale = vec![0f32; c];
    batch_stats(x, c, mean, var, &mut scale);
    scale.iter_mut().zip(gamma).for_each(|(s, &g)| *s *= g);
    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        for j in 0..c {
            yr[j] = (xr[j] - mean[j]) * scale[j] + beta[j];
        }
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
/// broadcastable): `softplus(x) − t·x`, as PyTorch's `BCEWithLogitsLoss`.
pub fn bce_with_logits(g: &mut Graph, logits: Id, targets: Id) -> GResult<Id> {
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
