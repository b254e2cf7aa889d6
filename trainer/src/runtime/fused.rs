//! The fused nodes ([`Op::FusedAdam`], [`Op::FusedAverage`], [`Op::FusedBatchNorm`],
//! [`Op::FusedBatchNormGrad`], [`Op::FusedLeakyReluGrad`], [`Op::FusedBce`],
//! [`Op::FusedBceGrad`]) as ONNX Runtime custom operators of the CPU sessions: the arithmetic is [`crate::optim`]'s and [`crate::ops`]'s, here only
//! the reading of the inputs, the writing of the outputs and the split over the cores.
//!
//! [`Op::FusedAdam`]: crate::graph::Op::FusedAdam
//! [`Op::FusedAverage`]: crate::graph::Op::FusedAverage
//! [`Op::FusedBatchNorm`]: crate::graph::Op::FusedBatchNorm
//! [`Op::FusedBatchNormGrad`]: crate::graph::Op::FusedBatchNormGrad
//! [`Op::FusedLeakyReluGrad`]: crate::graph::Op::FusedLeakyReluGrad
//! [`Op::FusedBce`]: crate::graph::Op::FusedBce
//! [`Op::FusedBceGrad`]: crate::graph::Op::FusedBceGrad

use crate::graph::onnx::FUSED_DOMAIN;
use crate::ops::{
    batch_norm_grad_kernel, batch_norm_kernel, bce_grad_kernel, bce_kernel, leaky_relu_grad_kernel,
};
use crate::optim::{adam_kernel, average_kernel};
use ::ort::operator::{
    BoxedKernel, ComputeContext, KernelContext, Operator, OperatorDomain, OperatorInput,
    OperatorOutput,
};
use ::ort::value::TensorElementType::Float32;
use ::ort::value::{ValueRef, ValueRefMut};
use ::ort::{Error, Result};

/// The domain the operators are registered under.
pub(super) fn domain() -> Result<OperatorDomain> {
    OperatorDomain::new(FUSED_DOMAIN)?
        .add(FusedAdam)?
        .add(FusedAverage)?
        .add(FUSED_BATCH_NORM)?
        .add(FUSED_BATCH_NORM_GRAD)?
        .add(FusedLeakyReluGrad)?
        .add(FusedBce)?
        .add(FusedBceGrad)
}

/// Elements per piece of work: small enough to balance two cores, large enough that the
/// split costs nothing next to the pass.
const PIECE: usize = 1 << 14;
/// Below this many elements in all, one core does the whole pass.
const SERIAL_BELOW: usize = 1 << 16;

/// The machine's cores, asked once per kernel rather than once per run.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Input `i` of operator `op`.
fn input<'a>(ctx: &'a ComputeContext, op: &str, i: usize) -> Result<ValueRef<'a>> {
    ctx.input(i)?
        .ok_or_else(|| Error::new(format!("{FUSED_DOMAIN}.{op}: input {i} missing")))
}

/// Output `j` of operator `op`, allocated `shape`.
fn output<'a>(
    ctx: &'a ComputeContext,
    op: &str,
    j: usize,
    shape: Vec<i64>,
) -> Result<ValueRefMut<'a>> {
    ctx.output(j, shape)?
        .ok_or_else(|| Error::new(format!("{FUSED_DOMAIN}.{op}: output {j} missing")))
}

/// Scalar input `i` (a one-element tensor) of operator `op`.
fn scalar(ctx: &ComputeContext, op: &str, i: usize) -> Result<f32> {
    let v = input(ctx, op, i)?;
    let (_, data) = v.try_extract_tensor::<f32>()?;
    data.first()
        .copied()
        .ok_or_else(|| Error::new(format!("{FUSED_DOMAIN}.{op}: input {i} is empty")))
}

/// Runs `work` on every piece, over `threads` cores when there is enough of it.
fn run_pieces<T: Send>(pieces: Vec<T>, elements: usize, threads: usize, work: impl Fn(T) + Sync) {
    if threads < 2 || elements < SERIAL_BELOW {
        pieces.into_iter().for_each(work);
        return;
    }
    let mut shares: Vec<Vec<T>> = (0..threads).map(|_| Vec::new()).collect();
    for (k, p) in pieces.into_iter().enumerate() {
        shares[k % threads].push(p);
    }
    let work = &work;
    std::thread::scope(|s| {
        let mut shares = shares.into_iter();
        let mine = shares.next().unwrap_or_default();
        for share in shares {
            s.spawn(move || share.into_iter().for_each(work));
        }
        mine.into_iter().for_each(work);
    });
}

/// The tensors of operator `op` after its `scalars` scalar inputs: `n` tensors in each of
/// `groups` input groups (checked), and the `out_groups · n` outputs, output `j` shaped like
/// input `scalars + j % n`.
fn operands<'a>(
    ctx: &'a ComputeContext,
    op: &str,
    scalars: usize,
    groups: usize,
    out_groups: usize,
) -> Result<(Vec<ValueRef<'a>>, Vec<ValueRefMut<'a>>)> {
    let (total, outputs) = (ctx.num_inputs()?, ctx.num_outputs()?);
    let n = total.saturating_sub(scalars) / groups;
    if n == 0 || scalars + n * groups != total || outputs != n * out_groups {
        return Err(Error::new(format!(
            "{FUSED_DOMAIN}.{op}: {total} inputs and {outputs} outputs do not make {groups} \
             groups in and {out_groups} out after {scalars} scalars"
        )));
    }
    let ins = (scalars..total)
        .map(|i| input(ctx, op, i))
        .collect::<Result<Vec<_>>>()?;
    let outs = (0..outputs)
        .map(|j| {
            output(
                ctx,
                op,
                j,
                ins[j % n].try_extract_tensor::<f32>()?.0.to_vec(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((ins, outs))
}

struct FusedAdam;

impl Operator for FusedAdam {
    type Kernel<'a> = BoxedKernel<'a>;

    fn name(&self) -> &str {
        "Adam"
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [OperatorInput::variadic(10).homogenous(Float32)]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::variadic(3).homogenous(Float32)]
    }

    fn create_kernel<'a>(&self, _: &KernelContext<'a>) -> Result<Self::Kernel<'a>> {
        let threads = cores();
        Ok(Box::new(move |ctx: &ComputeContext| {
            // k1, k2, β₁, 1−β₁, β₂, 1−β₂; then parameters, m, v, gradients.
            let s: Vec<f32> = (0..6)
                .map(|i| scalar(ctx, "Adam", i))
                .collect::<Result<_>>()?;
            let (ins, mut outs) = operands(ctx, "Adam", 6, 4, 3)?;
            let n = outs.len() / 3;
            let data = (ins.iter())
                .map(|v| v.try_extract_tensor::<f32>())
                .collect::<Result<Vec<_>>>()?;
            let mut slices = (outs.iter_mut())
                .map(|o| o.try_extract_tensor_mut::<f32>().map(|(_, d)| d))
                .collect::<Result<Vec<_>>>()?;
            let vs = slices.split_off(2 * n);
            let ms = slices.split_off(n);
            let mut pieces = Vec::new();
            let mut elements = 0;
            for (i, ((op, om), ov)) in slices.into_iter().zip(ms).zip(vs).enumerate() {
                let [p, m, v, g] = [0, 1, 2, 3].map(|k| data[k * n + i].1);
                if [m.len(), v.len(), g.len(), op.len()] != [p.len(); 4] {
                    return Err(Error::new(format!(
                        "{FUSED_DOMAIN}.Adam: tensor {i}'s parameter, moments and gradient differ in size"
                    )));
                }
                elements += p.len();
                let outs = op.chunks_mut(PIECE).zip(om.chunks_mut(PIECE));
                let ins = p.chunks(PIECE).zip(m.chunks(PIECE));
                let more = v.chunks(PIECE).zip(g.chunks(PIECE));
                for (((op, om), ov), ((p, m), (v, g))) in
                    outs.zip(ov.chunks_mut(PIECE)).zip(ins.zip(more))
                {
                    pieces.push((p, m, v, g, op, om, ov));
                }
            }
            let (k, betas) = ((s[0], s[1]), (s[2], s[3], s[4], s[5]));
            run_pieces(pieces, elements, threads, |(p, m, v, g, op, om, ov)| {
                adam_kernel(betas, k, p, m, v, g, op, om, ov)
            });
            Ok(())
        }))
    }
}

struct FusedAverage;

impl Operator for FusedAverage {
    type Kernel<'a> = BoxedKernel<'a>;

    fn name(&self) -> &str {
        "Average"
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [OperatorInput::variadic(3).homogenous(Float32)]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::variadic(1).homogenous(Float32)]
    }

    fn create_kernel<'a>(&self, _: &KernelContext<'a>) -> Result<Self::Kernel<'a>> {
        let threads = cores();
        Ok(Box::new(move |ctx: &ComputeContext| {
            let d = scalar(ctx, "Average", 0)?;
            let (ins, mut outs) = operands(ctx, "Average", 1, 2, 1)?;
            let n = outs.len();
            let data = (ins.iter())
                .map(|v| v.try_extract_tensor::<f32>())
                .collect::<Result<Vec<_>>>()?;
            let mut pieces = Vec::new();
            let mut elements = 0;
            for (i, o) in outs.iter_mut().enumerate() {
                let out = o.try_extract_tensor_mut::<f32>()?.1;
                let (new, avg) = (data[i].1, data[n + i].1);
                if avg.len() != new.len() || out.len() != new.len() {
                    return Err(Error::new(format!(
                        "{FUSED_DOMAIN}.Average: tensor {i}'s value and average differ in size"
                    )));
                }
                elements += new.len();
                let chunks = new.chunks(PIECE).zip(avg.chunks(PIECE));
                pieces.extend(out.chunks_mut(PIECE).zip(chunks));
            }
            run_pieces(pieces, elements, threads, |(out, (new, avg))| {
                average_kernel(d, new, avg, out)
            });
            Ok(())
        }))
    }
}

/// A BatchNorm kernel: its inputs, then its three outputs (`[N, C]`, `[C]`, `[C]`).
type BatchNormKernel = fn(&[&[f32]], [&mut [f32]; 3]);

/// A BatchNorm operator: `inputs` inputs, of which those in `rows` are `[N, C]` (shaped as the
/// first) and the rest `[C]`; outputs `[N, C]`, `[C]`, `[C]`.
struct BatchNormOp {
    name: &'static str,
    inputs: usize,
    rows: &'static [usize],
    kernel: BatchNormKernel,
}

/// x, γ, β, running mean, running variance → y, running mean, running variance.
const FUSED_BATCH_NORM: BatchNormOp = BatchNormOp {
    name: "BatchNorm",
    inputs: 5,
    rows: &[0],
    kernel: |i, [y, m, v]| batch_norm_kernel(i[0], i[1], i[2], i[3], i[4], y, m, v),
};

/// dy, x, γ → dx, dγ, dβ.
const FUSED_BATCH_NORM_GRAD: BatchNormOp = BatchNormOp {
    name: "BatchNormGrad",
    inputs: 3,
    rows: &[0, 1],
    kernel: |i, [dx, dg, db]| batch_norm_grad_kernel(i[0], i[1], i[2], dx, dg, db),
};

impl Operator for BatchNormOp {
    type Kernel<'a> = BoxedKernel<'a>;

    fn name(&self) -> &str {
        self.name
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        (0..self.inputs).map(|_| OperatorInput::required(Float32))
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [0, 1, 2].map(|_| OperatorOutput::required(Float32))
    }

    fn create_kernel<'a>(&self, _: &KernelContext<'a>) -> Result<Self::Kernel<'a>> {
        let (op, inputs, rows, kernel) = (self.name, self.inputs, self.rows, self.kernel);
        Ok(Box::new(move |ctx: &ComputeContext| {
            let ins = (0..inputs)
                .map(|i| input(ctx, op, i))
                .collect::<Result<Vec<_>>>()?;
            let x = ins
                .iter()
                .map(|v| v.try_extract_tensor::<f32>())
                .collect::<Result<Vec<_>>>()?;
            let shape = x[0].0.to_vec();
            let channels = match shape[..] {
                [n, c] if n > 0 && c > 0 => c as usize,
                _ => {
                    return Err(Error::new(format!(
                        "{FUSED_DOMAIN}.{op}: input 0 is shaped {shape:?}, not [N, C]"
                    )));
                }
            };
            for (i, (s, d)) in x.iter().enumerate() {
                let fits = if rows.contains(&i) {
                    s[..] == shape[..]
                } else {
                    d.len() == channels
                };
                if !fits {
                    let want = if rows.contains(&i) {
                        "as input 0"
                    } else {
                        "[C]"
                    };
                    return Err(Error::new(format!(
                        "{FUSED_DOMAIN}.{op}: input {i} is shaped {:?}, not {want} (input 0 {shape:?})",
                        &s[..]
                    )));
                }
            }
            let mut outs = [shape.clone(), vec![shape[1]], vec![shape[1]]]
                .into_iter()
                .enumerate()
                .map(|(j, s)| output(ctx, op, j, s))
                .collect::<Result<Vec<_>>>()?;
            let mut y = (outs.iter_mut())
                .map(|v| v.try_extract_tensor_mut::<f32>().map(|(_, d)| d))
                .collect::<Result<Vec<_>>>()?
                .into_iter();
            let (Some(p), Some(q), Some(r)) = (y.next(), y.next(), y.next()) else {
                return Err(Error::new(format!("{FUSED_DOMAIN}.{op}: three outputs")));
            };
            let data: Vec<&[f32]> = x.iter().map(|(_, d)| *d).collect();
            kernel(&data, [p, q, r]);
            Ok(())
        }))
    }
}

/// x, dy, slope (a scalar) → dx.
struct FusedLeakyReluGrad;

impl Operator for FusedLeakyReluGrad {
    type Kernel<'a> = BoxedKernel<'a>;

    fn name(&self) -> &str {
        "LeakyReluGrad"
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [0, 1, 2].map(|_| OperatorInput::required(Float32))
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(Float32)]
    }

    fn create_kernel<'a>(&self, _: &KernelContext<'a>) -> Result<Self::Kernel<'a>> {
        let threads = cores();
        Ok(Box::new(move |ctx: &ComputeContext| {
            let op = "LeakyReluGrad";
            let slope = scalar(ctx, op, 2)?;
            let (x, dy) = (input(ctx, op, 0)?, input(ctx, op, 1)?);
            let ((xs, x), (ds, dy)) = (
                x.try_extract_tensor::<f32>()?,
                dy.try_extract_tensor::<f32>()?,
            );
            if xs[..] != ds[..] {
                return Err(Error::new(format!(
                    "{FUSED_DOMAIN}.{op}: x is shaped {:?}, dy {:?}",
                    &xs[..],
                    &ds[..]
                )));
            }
            let mut out = output(ctx, op, 0, ds.to_vec())?;
            let dx = out.try_extract_tensor_mut::<f32>()?.1;
            let pieces: Vec<_> = (dx.chunks_mut(PIECE))
                .zip(x.chunks(PIECE).zip(dy.chunks(PIECE)))
                .collect();
            run_pieces(pieces, x.len(), threads, |(dx, (x, dy))| {
                leaky_relu_grad_kernel(slope, x, dy, dx)
            });
            Ok(())
        }))
    }
}

/// The logits and targets of a BCE operator, inputs `first` and `first + 1`: the targets as
/// many as the logits, or one for all.
fn bce_operands<'a>(
    ctx: &'a ComputeContext,
    op: &str,
    first: usize,
) -> Result<(Vec<i64>, ValueRef<'a>, ValueRef<'a>)> {
    let (x, t) = (input(ctx, op, first)?, input(ctx, op, first + 1)?);
    let (xs, xn) = {
        let (s, d) = x.try_extract_tensor::<f32>()?;
        (s.to_vec(), d.len())
    };
    let tn = t.try_extract_tensor::<f32>()?.1.len();
    if tn != 1 && tn != xn {
        return Err(Error::new(format!(
            "{FUSED_DOMAIN}.{op}: {tn} targets for {xn} logits (as many, or one for all)"
        )));
    }
    Ok((xs, x, t))
}

/// logits, targets → the mean loss (a scalar).
struct FusedBce;

impl Operator for FusedBce {
    type Kernel<'a> = BoxedKernel<'a>;

    fn name(&self) -> &str {
        "BinaryCrossEntropy"
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [0, 1].map(|_| OperatorInput::required(Float32))
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(Float32)]
    }

    fn create_kernel<'a>(&self, _: &KernelContext<'a>) -> Result<Self::Kernel<'a>> {
        Ok(Box::new(|ctx: &ComputeContext| {
            let op = "BinaryCrossEntropy";
            let (_, x, t) = bce_operands(ctx, op, 0)?;
            let loss = bce_kernel(
                x.try_extract_tensor::<f32>()?.1,
                t.try_extract_tensor::<f32>()?.1,
            );
            let mut out = output(ctx, op, 0, vec![])?;
            out.try_extract_tensor_mut::<f32>()?.1[0] = loss;
            Ok(())
        }))
    }
}

/// dloss (a scalar), logits, targets → dlogits.
struct FusedBceGrad;

impl Operator for FusedBceGrad {
    type Kernel<'a> = BoxedKernel<'a>;

    fn name(&self) -> &str {
        "BinaryCrossEntropyGrad"
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [0, 1, 2].map(|_| OperatorInput::required(Float32))
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(Float32)]
    }

    fn create_kernel<'a>(&self, _: &KernelContext<'a>) -> Result<Self::Kernel<'a>> {
        Ok(Box::new(|ctx: &ComputeContext| {
            let op = "BinaryCrossEntropyGrad";
            let dloss = scalar(ctx, op, 0)?;
            let (shape, x, t) = bce_operands(ctx, op, 1)?;
            let mut out = output(ctx, op, 0, shape)?;
            bce_grad_kernel(
                dloss,
                x.try_extract_tensor::<f32>()?.1,
                t.try_extract_tensor::<f32>()?.1,
                out.try_extract_tensor_mut::<f32>()?.1,
            );
            Ok(())
        }))
    }
}
