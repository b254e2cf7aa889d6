//! Reverse-mode differentiation over the primitive ops of [`crate::graph`]: appends the
//! backward pass to the same graph as ordinary nodes, so one ONNX graph holds both. With
//! [`Fusion::Fused`] (and f32) the activations' gradients are one fused node each; the fused
//! nodes forward have their own rules (a fused loss's gradient is one node too).

use crate::graph::{DType, GResult, Graph, GraphError, Id, Op};
use crate::optim::Fusion;

/// Sums `g` over the axes along which `target` was broadcast to `g`'s shape.
fn unbroadcast(gr: &mut Graph, g: Id, target: &[i64]) -> Id {
    let gs = gr.shape(g).to_vec();
    if gs == target {
        return g;
    }
    let extra = gs.len() - target.len();
    let mut axes: Vec<i64> = (0..extra as i64).collect();
    for (i, &t) in target.iter().enumerate() {
        if t == 1 && gs[i + extra] != 1 {
            axes.push((i + extra) as i64);
        }
    }
    let summed = if axes.is_empty() {
        g
    } else {
        gr.reduce_sum(g, &axes, true)
    };
    if gr.shape(summed) == target {
        summed
    } else {
        gr.reshape(summed, target)
    }
}

/// Broadcasts the gradient of a reduction back to the reduced input's shape.
fn unreduce(gr: &mut Graph, g: Id, in_shape: &[i64], axes: &[i64], keep: bool) -> GResult<Id> {
    let rank = in_shape.len() as i64;
    let axes: Vec<i64> = axes
        .iter()
        .map(|&a| if a < 0 { a + rank } else { a })
        .collect();
    let kept: Vec<i64> = in_shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&(i as i64)) { 1 } else { d })
        .collect();
    let g = if keep || gr.shape(g) == kept.as_slice() {
        g
    } else {
        gr.reshape(g, &kept)
    };
    gr.expand(g, in_shape)
}

/// Vector-Jacobian product of node `y` with respect to its input number `k`.
fn vjp(gr: &mut Graph, y: Id, k: usize, g: Id, fusion: Fusion) -> GResult<Option<Id>> {
    let fuse = fusion.layers() && gr.dtype == DType::F32;
    let node = gr.node(y).clone();
    let x = node.ins[k];
    let xs = gr.shape(x).to_vec();
    let other = |k2: usize| node.ins[k2];
    let r = match &node.op {
        Op::Input(_) | Op::Const(_) => None,
        Op::Add => Some(unbroadcast(gr, g, &xs)),
        Op::Sub => {
            let g = if k == 0 { g } else { gr.neg(g) };
            Some(unbroadcast(gr, g, &xs))
        }
        Op::Mul => {
            let t = gr.mul(g, other(1 - k))?;
            Some(unbroadcast(gr, t, &xs))
        }
        Op::Div => {
            let b = other(1);
            let t = if k == 0 {
                gr.div(g, b)?
            } else {
                // d(a/b)/db = -(a/b)/b
                let t = gr.mul(g, y)?;
                let t = gr.div(t, b)?;
                gr.neg(t)
            };
            Some(unbroadcast(gr, t, &xs))
        }
        Op::Neg => Some(gr.neg(g)),
        Op::Abs => {
            let s = gr.sign(x);
            Some(gr.mul(g, s)?)
        }
        // ReLU's output is positive exactly where its input is.
        Op::Relu if fuse => Some(gr.fused_leaky_relu_grad(y, g, 0.0)?),
        Op::LeakyRelu(a) if fuse => Some(gr.fused_leaky_relu_grad(x, g, *a)?),
        Op::Relu => {
            let zero = gr.scalar(0.0);
            let pos = gr.greater(y, zero)?;
            Some(gr.where_(pos, g, zero)?)
        }
        Op::LeakyRelu(a) => {
            let zero = gr.scalar(0.0);
            let pos = gr.greater(x, zero)?;
            let ga = gr.mul_scalar(g, *a as f64)?;
            Some(gr.where_(pos, g, ga)?)
        }
        Op::Sigmoid => {
            let one = gr.scalar(1.0);
            let om = gr.sub(one, y)?;
            let d = gr.mul(y, om)?;
            Some(gr.mul(g, d)?)
        }
        Op::Exp => Some(gr.mul(g, y)?),
        Op::Log => Some(gr.div(g, x)?),
        Op::Sqrt => {
            let h = gr.mul_scalar(g, 0.5)?;
            Some(gr.div(h, y)?)
        }
        Op::ReduceSum { axes, keep } => Some(unreduce(gr, g, &xs, axes, *keep)?),
        Op::ReduceMean { axes, keep } => {
            let rank = xs.len() as i64;
            let count: i64 = axes
                .iter()
                .map(|&a| xs[(if a < 0 { a + rank } else { a }) as usize])
                .product();
            let gs = gr.mul_scalar(g, 1.0 / count as f64)?;
            Some(unreduce(gr, gs, &xs, axes, *keep)?)
        }
        Op::Concat(axis) => {
            let rank = xs.len() as i64;
            let ax = if *axis < 0 { axis + rank } else { *axis } as usize;
            let start: i64 = node.ins[..k].iter().map(|&i| gr.shape(i)[ax]).sum();
            Some(gr.slice(g, ax as i64, start, start + xs[ax]))
        }
        Op::Gemm { ta, tb } => {
            let (a, b) = (node.ins[0], node.ins[1]);
            Some(match k {
                0 if !ta => gr.gemm(g, b, None, false, !tb)?,
                0 => gr.gemm(b, g, None, *tb, true)?,
                1 if !tb => gr.gemm(a, g, None, !ta, false)?,
                1 => gr.gemm(g, a, None, true, *ta)?,
                _ => unbroadcast(gr, g, &xs),
            })
        }
        Op::Reshape(_) => Some(gr.reshape(g, &xs)),
        Op::Expand(_) => Some(unbroadcast(gr, g, &xs)),
        Op::Where => {
            if k == 0 {
                None
            } else {
                let zero = gr.scalar(0.0);
                let c = node.ins[0];
                let t = if k == 1 {
                    gr.where_(c, g, zero)?
                } else {
                    gr.where_(c, zero, g)?
                };
                Some(unbroadcast(gr, t, &xs))
            }
        }
        // Piecewise constant, or a stability shift whose gradient cancels (see `Op::ReduceMax`).
        Op::Sign | Op::Greater | Op::ReduceMax { .. } => None,
        Op::Slice { axis, start, end } => {
            // Zeros on either side of the slice, along its axis.
            let ax = if *axis < 0 {
                axis + xs.len() as i64
            } else {
                *axis
            } as usize;
            let mut parts = Vec::new();
            for (from, to) in [(0, *start), (*start, *end), (*end, xs[ax])] {
                if from == *start && to == *end {
                    parts.push(g);
                } else if to > from {
                    let mut shape = xs.clone();
                    shape[ax] = to - from;
                    let zero = gr.scalar(0.0);
                    parts.push(gr.expand(zero, &shape)?);
                }
            }
            Some(gr.concat(&parts, ax as i64)?)
        }
        Op::FusedBce if k == 0 => Some(gr.fused_bce_grad(g, node.ins[0], node.ins[1])?),
        // `y` of a fused BatchNorm passes its gradient to the node (see `gradients`); its
        // statistics feed only the running averages.
        Op::Pick(0) if matches!(gr.node(x).op, Op::FusedBatchNorm) => Some(g),
        Op::Pow
        | Op::FusedAdam
        | Op::FusedAverage
        | Op::FusedBatchNormGrad
        | Op::FusedBatchNorm
        | Op::FusedLeakyReluGrad(_)
        | Op::FusedBce
        | Op::FusedBceGrad
        | Op::Pick(_) => {
            return Err(GraphError::NoGradient(format!("{:?}", node.op)));
        }
    };
    Ok(r)
}

/// Appends to `gr` the gradient of the scalar `loss` with respect to each of `wrt`, in the
/// form `fusion` asks for, and returns their ids (a zero constant where `loss` does not
/// depend on one).
pub fn gradients(gr: &mut Graph, loss: Id, wrt: &[Id], fusion: Fusion) -> GResult<Vec<Id>> {
    let n = loss.0 + 1;
    let mut depends = vec![false; n];
    for w in wrt {
        if w.0 < n {
            depends[w.0] = true;
        }
    }
    for i in 0..n {
        if !depends[i] && gr.nodes[i].ins.iter().any(|j| depends[j.0]) {
            depends[i] = !matches!(
                gr.nodes[i].op,
                Op::Sign | Op::Greater | Op::ReduceMax { .. }
            );
        }
    }
    let mut adj: Vec<Option<Id>> = vec![None; n];
    let seed = {
        let s = gr.shape(loss).to_vec();
        let count = s.iter().product::<i64>().max(1) as usize;
        gr.constant(vec![1.0; count], &s)
    };
    adj[loss.0] = Some(seed);
    for i in (0..n).rev() {
        let Some(g) = adj[i] else { continue };
        if !depends[i] {
            continue;
        }
        let ins = gr.nodes[i].ins.clone();
        // One gradient node serves `x`, `γ` and `β` of a fused BatchNorm (its running
        // statistics have none).
        let fused_bn = if matches!(gr.nodes[i].op, Op::FusedBatchNorm) {
            let (xs, cs) = (gr.shape(ins[0]).to_vec(), gr.shape(ins[1]).to_vec());
            let shapes = [xs, cs.clone(), cs];
            Some(gr.multi(Op::FusedBatchNormGrad, vec![g, ins[0], ins[1]], &shapes))
        } else {
            None
        };
        for (k, x) in ins.iter().enumerate() {
            if !depends[x.0] {
                continue;
            }
            let c = match &fused_bn {
                Some(grads) => grads.get(k).copied(),
                None => vjp(gr, Id(i), k, g, fusion)?,
            };
            if let Some(c) = c {
                adj[x.0] = Some(match adj[x.0] {
                    Some(prev) => gr.add(prev, c)?,
                    None => c,
                });
            }
        }
    }
    Ok(wrt
        .iter()
        .map(|w| match adj.get(w.0).copied().flatten() {
            Some(g) => g,
            None => {
                let s = gr.shape(*w).to_vec();
                let count = s.iter().product::<i64>().max(1) as usize;
                gr.constant(vec![0.0; count], &s)
            }
        })
        .collect())
}
