//! Adam as graph nodes: the step graph reads parameters, moments and the step count and
//! writes their updated values, with PyTorch's bias correction.

use crate::graph::{GResult, Graph, Id};

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
/// count.
///
/// `m' = β₁m + (1−β₁)g`, `v' = β₂v + (1−β₂)g²`,
/// `p' = p − lr/(1−β₁ᵗ) · m' / (√v'/√(1−β₂ᵗ) + ε)` with `t` the incremented count.
pub fn adam_step(
    g: &mut Graph,
    cfg: &Adam,
    step: Id,
    lr_scale: Option<Id>,
    slots: &[AdamSlot],
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
