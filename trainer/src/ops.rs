//! Composite layers and losses built from primitives, so that only primitives need gradient
//! rules: Linear, BatchNorm (training and evaluation), stable softplus, BCE with logits,
//! softmax cross-entropy.

use crate::graph::{GResult, Graph, Id};

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

/// BatchNorm over the batch axis of `x` `[N, C]` with batch statistics.
pub fn batch_norm_train(
    g: &mut Graph,
    x: Id,
    gamma: Id,
    beta: Id,
    running_mean: Id,
    running_var: Id,
) -> GResult<BatchNormTrain> {
    let n = g.shape(x)[0] as f64;
    let c = g.shape(x)[1];
    let mean = g.reduce_mean(x, &[0], true);
    let xc = g.sub(x, mean)?;
    let sq = g.mul(xc, xc)?;
    let var = g.reduce_mean(sq, &[0], true);
    let ve = g.add_scalar(var, BN_EPS)?;
    let sd = g.sqrt(ve);
    let xn = g.div(xc, sd)?;
    let scaled = g.mul(xn, gamma)?;
    let y = g.add(scaled, beta)?;
    // Running statistics: not differentiated (nothing downstream of the loss uses them).
    let mean_c = g.reshape(mean, &[c]);
    let var_c = g.reshape(var, &[c]);
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
