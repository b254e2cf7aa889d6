//! Adam and the weight average as graph nodes: the step graph reads parameters, moments and
//! the step count and writes their updated values, with PyTorch's bias correction. Either in
//! standard ONNX ops, a dozen elementwise nodes per tensor, or fused into one node per model
//! for ONNX Runtime's CPU sessions, whose kernels ([`adam_kernel`], [`average_kernel`]) do
//! the same arithmetic in one pass. [`Fusion`] also chooses the form of BatchNorm, of the
//! activations' gradients and of the loss.

use crate::graph::{GResult, Graph, Id, Op};

/// How a step graph writes its optimizer, its BatchNorm, its activations' gradients and its
/// loss: what the executor can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fusion {
    /// Standard ONNX ops, per tensor: every runtime runs them (tract, ONNX Runtime on CUDA).
    Standard,
    /// The optimizer fused, the layers and the loss in standard ops: compares the
    /// optimizer's two forms over the same operations everywhere else.
    Optimizer,
    /// One [`Op::FusedAdam`] (and one [`Op::FusedAverage`]) per model, one pass over the
    /// tensors instead of twelve; one [`Op::FusedBatchNorm`] node each way per layer, its
    /// running statistics included, instead of two dozen; one [`Op::FusedLeakyReluGrad`]
    /// per activation's gradient instead of two or three; one [`Op::FusedBce`] node each way
    /// for the loss instead of ten and fifteen. ONNX Runtime's CPU sessions register them.
    Fused,
}

impl Fusion {
    /// Whether Adam and the weight average are fused nodes.
    pub fn optimizer(self) -> bool {
        self != Fusion::Standard
    }

    /// Whether BatchNorm in training mode, the activations' gradients and the BCE loss are
    /// fused nodes.
    pub fn layers(self) -> bool {
        self == Fusion::Fused
    }
}

/// Adam's hyper-parameters (PyTorch defaults apart from the learning rate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Adam {
    pub fn new(lr: f64, beta1: f64, beta2: f64) -> Self {
        Adam {
            lr,
            beta1,
            beta2,
            eps: 1e-8,
        }
    }
}

/// One parameter's slot in the step graph.
pub struct AdamSlot {
    pub param: Id,
    pub m: Id,
    pub v: Id,
    pub grad: Id,
}

/// Updated tensors of one slot.
pub struct AdamUpdate {
    pub param: Id,
    pub m: Id,
    pub v: Id,
}

/// Emits one Adam step for every slot. `step` is the count of steps taken so far (a scalar);
/// `lr_scale`, when given, a scalar input multiplying the learning rate (a schedule set from
/// the host at each step; it must stay positive). Returns the updates and the incremented
/// count. Both forms compute the same f32 operations in the same order.
///
/// `m' = β₁m + (1−β₁)g`, `v' = β₂v + (1−β₂)g²`,
/// `p' = p − lr/(1−β₁ᵗ) · m' / (√v'/√(1−β₂ᵗ) + ε)` with `t` the incremented count.
pub fn adam_step(
    g: &mut Graph,
    cfg: &Adam,
    step: Id,
    lr_scale: Option<Id>,
    slots: &[AdamSlot],
    fusion: Fusion,
) -> GResult<(Vec<AdamUpdate>, Id)> {
    let t = g.add_scalar(step, 1.0)?;
    let b1 = g.scalar(cfg.beta1);
    let b2 = g.scalar(cfg.beta2);
    let one = g.scalar(1.0);
    let p1 = g.pow(b1, t)?;
    let p2 = g.pow(b2, t)?;
    let bc1 = g.sub(one, p1)?;
    let bc2 = g.sub(one, p2)?;
    let bc2_sqrt = g.sqrt(bc2);
    // p' = p − m' / denom' with denom' = (√v'/√bc2 + ε)·bc1/lr = √v'·k1 + k2.
    let lr = g.scalar(cfg.lr);
    let lr = match lr_scale {
        Some(scale) => g.mul(lr, scale)?,
        None => lr,
    };
    let bc1_lr = g.div(bc1, lr)?;
    let k1 = g.div(bc1_lr, bc2_sqrt)?;
    let k2 = g.mul_scalar(bc1_lr, cfg.eps)?;
    let mut out = Vec::with_capacity(slots.len());
    if fusion.optimizer() && !slots.is_empty() {
        // The standard form's constants, rounded to the graph's type the same way.
        let mut ins = vec![k1, k2];
        for c in [cfg.beta1, 1.0 - cfg.beta1, cfg.beta2, 1.0 - cfg.beta2] {
            ins.push(g.scalar(c));
        }
        ins.extend(slots.iter().map(|s| s.param));
        ins.extend(slots.iter().map(|s| s.m));
        ins.extend(slots.iter().map(|s| s.v));
        ins.extend(slots.iter().map(|s| s.grad));
        let shapes: Vec<Vec<i64>> = slots.iter().map(|s| g.shape(s.param).to_vec()).collect();
        let picks = g.multi(
            Op::FusedAdam,
            ins,
            &[&shapes[..], &shapes, &shapes].concat(),
        );
        let n = slots.len();
        for i in 0..n {
            out.push(AdamUpdate {
                param: picks[i],
                m: picks[n + i],
                v: picks[2 * n + i],
            });
        }
        return Ok((out, t));
    }
    for s in slots {
        let m_old = g.mul_scalar(s.m, cfg.beta1)?;
        let m_new = g.mul_scalar(s.grad, 1.0 - cfg.beta1)?;
        let m = g.add(m_old, m_new)?;
        let v_old = g.mul_scalar(s.v, cfg.beta2)?;
        let gg = g.mul_scalar(s.grad, 1.0 - cfg.beta2)?;
        let v_new = g.mul(gg, s.grad)?;
        let v = g.add(v_old, v_new)?;
        let sv = g.sqrt(v);
        let d = g.mul(sv, k1)?;
        let d = g.add(d, k2)?;
        let upd = g.div(m, d)?;
        let param = g.sub(s.param, upd)?;
        out.push(AdamUpdate { param, m, v });
    }
    Ok((out, t))
}

/// The moving average of each `(avg, new)` pair, `new + d·(avg − new)` with `d` a scalar in
/// the graph; returns the new averages.
pub fn moving_average(
    g: &mut Graph,
    d: Id,
    pairs: &[(Id, Id)],
    fusion: Fusion,
) -> GResult<Vec<Id>> {
    if fusion.optimizer() && !pairs.is_empty() {
        let mut ins = vec![d];
        ins.extend(pairs.iter().map(|&(_, new)| new));
        ins.extend(pairs.iter().map(|&(avg, _)| avg));
        let shapes: Vec<Vec<i64>> = pairs.iter().map(|&(a, _)| g.shape(a).to_vec()).collect();
        return Ok(g.multi(Op::FusedAverage, ins, &shapes));
    }
    pairs
        .iter()
        .map(|&(avg, new)| {
            let gap = g.sub(avg, new)?;
            let kept = g.mul(gap, d)?;
            g.add(new, kept)
        })
        .collect()
}

/// [`Op::FusedAdam`]'s arithmetic on one tensor, in the standard form's f32 operations and
/// order: `m' = m·β₁ + g·(1−β₁)`, `v' = v·β₂ + g·(1−β₂)·g`, `p' = p − m' / (√v'·k1 + k2)`.
/// `c1` and `c2` are `1 − β₁` and `1 − β₂` rounded from f64 as the graph's constants are.
#[allow(clippy::too_many_arguments)]
pub fn adam_kernel(
    (beta1, c1, beta2, c2): (f32, f32, f32, f32),
    (k1, k2): (f32, f32),
    p: &[f32],
    m: &[f32],
    v: &[f32],
    grad: &[f32],
    out_p: &mut [f32],
    out_m: &mut [f32],
    out_v: &mut [f32],
) {
    let it = (out_p.iter_mut().zip(out_m.iter_mut()).zip(out_v.iter_mut()))
        .zip(p.iter().zip(m).zip(v).zip(grad));
    for (((op, om), ov), (((&p, &m), &v), &g)) in it {
        let m2 = m * beta1 + g * c1;
        let v2 = v * beta2 + (g * c2) * g;
        *om = m2;
        *ov = v2;
        *op = p - m2 / (v2.sqrt() * k1 + k2);
    }
}

/// [`Op::FusedAverage`]'s arithmetic on one tensor: `new + (avg − new)·d`.
pub fn average_kernel(d: f32, new: &[f32], avg: &[f32], out: &mut [f32]) {
    for (o, (&n, &a)) in out.iter_mut().zip(new.iter().zip(avg)) {
        *o = n + (a - n) * d;
    }
}
