//! A small tensor-program IR with static shapes: what the differentiator walks and what
//! [`onnx`] writes out as an ONNX model. Every value is produced by one node, in order.

pub mod onnx;

use thiserror::Error;

/// A value in a [`Graph`]: the index of the node that produces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub(crate) usize);

/// Element type of the graph's floating-point values (f64 for gradient checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
}

/// The primitive operations; composites (BatchNorm, BCE, softmax CE) are built from these.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A named graph input.
    Input(String),
    /// A constant tensor (stored in f64, written in the graph's dtype).
    Const(Vec<f64>),
    /// `op(a) · op(b) (+ c)`, 2-D; `c` optional, broadcast over rows.
    Gemm {
        ta: bool,
        tb: bool,
    },
    Add,
    Sub,
    Mul,
    Div,
    /// `a ^ b`; differentiable in neither argument (used for Adam's bias correction).
    Pow,
    Neg,
    Abs,
    Sign,
    Relu,
    LeakyRelu(f32),
    Sigmoid,
    Exp,
    Log,
    Sqrt,
    ReduceSum {
        axes: Vec<i64>,
        keep: bool,
    },
    ReduceMean {
        axes: Vec<i64>,
        keep: bool,
    },
    /// Not differentiated: only ever a numerical-stability shift whose gradient cancels.
    ReduceMax {
        axes: Vec<i64>,
        keep: bool,
    },
    Concat(i64),
    Slice {
        axis: i64,
        start: i64,
        end: i64,
    },
    /// Boolean `a > b`.
    Greater,
    /// `cond ? a : b`.
    Where,
    Reshape(Vec<i64>),
    Expand(Vec<i64>),
    /// Adam on several tensors in one node, for runtimes that run it as one kernel (see
    /// [`crate::optim::Fusion`]): inputs the scalars `k1`, `k2`, `β₁`, `1−β₁`, `β₂`, `1−β₂`,
    /// then `n` each of parameters, first moments, second moments and gradients; outputs,
    /// through [`Op::Pick`], the `n` new parameters, then first moments, then second moments.
    /// Never differentiated.
    FusedAdam,
    /// The moving average `new + d·(avg − new)` on several tensors in one node: inputs the
    /// scalar `d`, then `n` new values and `n` averages; outputs, through [`Op::Pick`], the
    /// `n` new averages. Never differentiated.
    FusedAverage,
    /// BatchNorm in training mode over the batch axis in one node: inputs `x` `[N, C]`, `γ`,
    /// `β` and the running mean and variance `[C]`; outputs, through [`Op::Pick`], `y` and
    /// the updated running statistics (never differentiated). See
    /// [`crate::ops::batch_norm_train`].
    FusedBatchNorm,
    /// The gradient of [`Op::FusedBatchNorm`]'s `y`: inputs `dy`, `x`, `γ`; outputs, through
    /// [`Op::Pick`], `dx`, `dγ`, `dβ`. Never differentiated.
    FusedBatchNormGrad,
    /// The gradient of [`Op::LeakyRelu`] with this slope (0: [`Op::Relu`]) in one node:
    /// inputs `x` (for ReLU its output will do: the same sign) and `dy`; output `dy` where
    /// `x > 0`, `slope·dy` elsewhere. Never differentiated.
    FusedLeakyReluGrad(f32),
    /// The mean binary cross-entropy of `sigmoid(logits)` against `targets` in one node:
    /// inputs `logits` and `targets` (as many values, or one for all); output the scalar
    /// mean of `softplus(x) − t·x`. See [`crate::ops::bce_with_logits`].
    FusedBce,
    /// The gradient of [`Op::FusedBce`] with respect to its logits: inputs the scalar `dloss`,
    /// `logits`, `targets`; output `dloss·(sigmoid(x) − t)/n` shaped as the logits. Never
    /// differentiated.
    FusedBceGrad,
    /// Output `k` of the multi-output node that is its one input.
    Pick(usize),
}

/// One node: operation, inputs, and the static shape of its output (`-1`: a dynamic batch).
#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub ins: Vec<Id>,
    pub shape: Vec<i64>,
    pub boolean: bool,
}

/// Shape errors found while building; they are programming errors of the caller, reported
/// rather than panicking.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GraphError {
    #[error("shapes {a:?} and {b:?} do not broadcast (in {op})")]
    Broadcast {
        op: String,
        a: Vec<i64>,
        b: Vec<i64>,
    },
    #[error("{op}: {msg}")]
    Shape { op: String, msg: String },
    #[error("{0} has no gradient rule")]
    NoGradient(String),
    #[error("duplicate graph output name `{0}`")]
    DuplicateOutput(String),
}

pub type GResult<T> = Result<T, GraphError>;

/// A graph under construction: nodes in topological order, named inputs and outputs.
#[derive(Clone, Debug)]
pub struct Graph {
    pub dtype: DType,
    pub nodes: Vec<Node>,
    pub outputs: Vec<(String, Id)>,
}

fn broadcast(op: &str, a: &[i64], b: &[i64]) -> GResult<Vec<i64>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(GraphError::Broadcast {
                op: op.into(),
                a: a.to_vec(),
                b: b.to_vec(),
            });
        };
    }
    Ok(out)
}

fn norm_axis(axis: i64, rank: usize) -> usize {
    if axis < 0 {
        (axis + rank as i64) as usize
    } else {
        axis as usize
    }
}

impl Graph {
    pub fn new(dtype: DType) -> Self {
        Graph {
            dtype,
            nodes: Vec::new(),
            outputs: Vec::new(),
        }
    }

    pub fn shape(&self, id: Id) -> &[i64] {
        &self.nodes[id.0].shape
    }

    pub fn node(&self, id: Id) -> &Node {
        &self.nodes[id.0]
    }

    fn push(&mut self, op: Op, ins: Vec<Id>, shape: Vec<i64>) -> Id {
        self.nodes.push(Node {
            op,
            ins,
            shape,
            boolean: false,
        });
        Id(self.nodes.len() - 1)
    }

    /// This graph's matrix products alone, each fed by inputs of its operands' shapes, with
    /// the same transposes: what the train bench times beside the whole step, so that the
    /// cost of everything else in it (the optimizer's elementwise passes above all) shows.
    /// Inputs and outputs are named `{prefix}gemm{node}.{operand}` and `{prefix}gemm{node}`.
    pub fn gemms_only(&self, prefix: &str) -> GResult<Graph> {
        let mut g = Graph::new(self.dtype);
        for (k, node) in self.nodes.iter().enumerate() {
            if let Op::Gemm { ta, tb } = node.op {
                let ins: Vec<Id> = (node.ins.iter().enumerate())
                    .map(|(j, &i)| g.input(&format!("{prefix}gemm{k}.{j}"), self.shape(i)))
                    .collect();
                let product = g.gemm(ins[0], ins[1], ins.get(2).copied(), ta, tb)?;
                g.output(&format!("{prefix}gemm{k}"), product)?;
            }
        }
        Ok(g)
    }

    /// A named input of the given shape.
    pub fn input(&mut self, name: &str, shape: &[i64]) -> Id {
        self.push(Op::Input(name.to_string()), vec![], shape.to_vec())
    }

    /// Names of the graph's inputs with their shapes, in declaration order.
    pub fn inputs(&self) -> Vec<(String, Vec<i64>)> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Input(name) => Some((name.clone(), n.shape.clone())),
                _ => None,
            })
            .collect()
    }

    /// Declares `id` as the graph output `name`.
    pub fn output(&mut self, name: &str, id: Id) -> GResult<()> {
        if self.outputs.iter().any(|(n, _)| n == name) {
            return Err(GraphError::DuplicateOutput(name.into()));
        }
        self.outputs.push((name.to_string(), id));
        Ok(())
    }

    pub fn constant(&mut self, values: Vec<f64>, shape: &[i64]) -> Id {
        self.push(Op::Const(values), vec![], shape.to_vec())
    }

    pub fn scalar(&mut self, v: f64) -> Id {
        self.constant(vec![v], &[])
    }

    fn binary(&mut self, op: Op, a: Id, b: Id) -> GResult<Id> {
        let shape = broadcast(&format!("{op:?}"), self.shape(a), self.shape(b))?;
        Ok(self.push(op, vec![a, b], shape))
    }

    pub fn add(&mut self, a: Id, b: Id) -> GResult<Id> {
        self.binary(Op::Add, a, b)
    }
    pub fn sub(&mut self, a: Id, b: Id) -> GResult<Id> {
        self.binary(Op::Sub, a, b)
    }
    pub fn mul(&mut self, a: Id, b: Id) -> GResult<Id> {
        self.binary(Op::Mul, a, b)
    }
    pub fn div(&mut self, a: Id, b: Id) -> GResult<Id> {
        self.binary(Op::Div, a, b)
    }
    pub fn pow(&mut self, a: Id, b: Id) -> GResult<Id> {
        self.binary(Op::Pow, a, b)
    }
    /// `a * c` for a scalar constant `c`.
    pub fn mul_scalar(&mut self, a: Id, c: f64) -> GResult<Id> {
        let s = self.scalar(c);
        self.mul(a, s)
    }
    /// `a + c` for a scalar constant `c`.
    pub fn add_scalar(&mut self, a: Id, c: f64) -> GResult<Id> {
        let s = self.scalar(c);
        self.add(a, s)
    }

    pub fn greater(&mut self, a: Id, b: Id) -> GResult<Id> {
        let id = self.binary(Op::Greater, a, b)?;
        self.nodes[id.0].boolean = true;
        Ok(id)
    }

    pub fn where_(&mut self, cond: Id, a: Id, b: Id) -> GResult<Id> {
        let s = broadcast("Where", self.shape(a), self.shape(b))?;
        let s = broadcast("Where", self.shape(cond), &s)?;
        Ok(self.push(Op::Where, vec![cond, a, b], s))
    }

    fn unary(&mut self, op: Op, a: Id) -> Id {
        let s = self.shape(a).to_vec();
        self.push(op, vec![a], s)
    }
    pub fn neg(&mut self, a: Id) -> Id {
        self.unary(Op::Neg, a)
    }
    pub fn abs(&mut self, a: Id) -> Id {
        self.unary(Op::Abs, a)
    }
    pub fn sign(&mut self, a: Id) -> Id {
        self.unary(Op::Sign, a)
    }
    pub fn relu(&mut self, a: Id) -> Id {
        self.unary(Op::Relu, a)
    }
    pub fn leaky_relu(&mut self, a: Id, slope: f32) -> Id {
        self.unary(Op::LeakyRelu(slope), a)
    }
    /// [`Op::FusedBce`] of `logits` against `targets`.
    pub fn fused_bce(&mut self, logits: Id, targets: Id) -> GResult<Id> {
        self.bce_operands("BinaryCrossEntropy", logits, targets)?;
        Ok(self.push(Op::FusedBce, vec![logits, targets], vec![]))
    }
    /// [`Op::FusedBceGrad`]: the gradient `dloss` (a scalar) brings to `logits`.
    pub fn fused_bce_grad(&mut self, dloss: Id, logits: Id, targets: Id) -> GResult<Id> {
        self.bce_operands("BinaryCrossEntropyGrad", logits, targets)?;
        let shape = self.shape(logits).to_vec();
        Ok(self.push(Op::FusedBceGrad, vec![dloss, logits, targets], shape))
    }
    /// Whether `targets` suit a fused BCE of `logits`: shaped as them, or one value for all.
    pub fn bce_targets_fit(&self, logits: Id, targets: Id) -> bool {
        let ts = self.shape(targets);
        ts.iter().product::<i64>() == 1 || self.shape(logits) == ts
    }
    fn bce_operands(&self, op: &str, logits: Id, targets: Id) -> GResult<()> {
        if self.bce_targets_fit(logits, targets) {
            return Ok(());
        }
        let (ls, ts) = (self.shape(logits), self.shape(targets));
        Err(GraphError::Shape {
            op: op.into(),
            msg: format!("targets {ts:?} are neither one value nor shaped as the logits {ls:?}"),
        })
    }
    /// [`Op::FusedLeakyReluGrad`] of `dy` at `x`.
    pub fn fused_leaky_relu_grad(&mut self, x: Id, dy: Id, slope: f32) -> GResult<Id> {
        let (xs, ds) = (self.shape(x).to_vec(), self.shape(dy).to_vec());
        if xs != ds {
            return Err(GraphError::Shape {
                op: "LeakyReluGrad".into(),
                msg: format!("x {xs:?} and dy {ds:?} differ"),
            });
        }
        Ok(self.push(Op::FusedLeakyReluGrad(slope), vec![x, dy], xs))
    }
    pub fn sigmoid(&mut self, a: Id) -> Id {
        self.unary(Op::Sigmoid, a)
    }
    pub fn exp(&mut self, a: Id) -> Id {
        self.unary(Op::Exp, a)
    }
    pub fn log(&mut self, a: Id) -> Id {
        self.unary(Op::Log, a)
    }
    pub fn sqrt(&mut self, a: Id) -> Id {
        self.unary(Op::Sqrt, a)
    }

    /// `op(a) · op(b) + c`: 2-D matrices, `c` (optional) of shape `[n]` or `[1, n]`.
    pub fn gemm(&mut self, a: Id, b: Id, c: Option<Id>, ta: bool, tb: bool) -> GResult<Id> {
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        if sa.len() != 2 || sb.len() != 2 {
            return Err(GraphError::Shape {
                op: "Gemm".into(),
                msg: format!("needs 2-D operands, got {sa:?} and {sb:?}"),
            });
        }
        let (m, k1) = if ta { (sa[1], sa[0]) } else { (sa[0], sa[1]) };
        let (k2, n) = if tb { (sb[1], sb[0]) } else { (sb[0], sb[1]) };
        if k1 != k2 {
            return Err(GraphError::Shape {
                op: "Gemm".into(),
                msg: format!("inner dimensions differ: {sa:?} (ta={ta}) × {sb:?} (tb={tb})"),
            });
        }
        let mut ins = vec![a, b];
        if let Some(c) = c {
            broadcast("Gemm bias", &[m, n], self.shape(c))?;
            ins.push(c);
        }
        Ok(self.push(Op::Gemm { ta, tb }, ins, vec![m, n]))
    }

    fn reduced_shape(&self, a: Id, axes: &[i64], keep: bool) -> Vec<i64> {
        let s = self.shape(a);
        let axes: Vec<usize> = axes.iter().map(|&x| norm_axis(x, s.len())).collect();
        s.iter()
            .enumerate()
            .filter_map(|(i, &d)| {
                if axes.contains(&i) {
                    keep.then_some(1)
                } else {
                    Some(d)
                }
            })
            .collect()
    }
    pub fn reduce_sum(&mut self, a: Id, axes: &[i64], keep: bool) -> Id {
        let s = self.reduced_shape(a, axes, keep);
        let axes = axes.to_vec();
        self.push(Op::ReduceSum { axes, keep }, vec![a], s)
    }
    pub fn reduce_mean(&mut self, a: Id, axes: &[i64], keep: bool) -> Id {
        let s = self.reduced_shape(a, axes, keep);
        let axes = axes.to_vec();
        self.push(Op::ReduceMean { axes, keep }, vec![a], s)
    }
    pub fn reduce_max(&mut self, a: Id, axes: &[i64], keep: bool) -> Id {
        let s = self.reduced_shape(a, axes, keep);
        let axes = axes.to_vec();
        self.push(Op::ReduceMax { axes, keep }, vec![a], s)
    }
    /// Mean of all elements, a scalar.
    pub fn mean_all(&mut self, a: Id) -> Id {
        let axes: Vec<i64> = (0..self.shape(a).len() as i64).collect();
        self.reduce_mean(a, &axes, false)
    }

    pub fn concat(&mut self, parts: &[Id], axis: i64) -> GResult<Id> {
        let Some(&head) = parts.first() else {
            return Err(GraphError::Shape {
                op: "Concat".into(),
                msg: "nothing to concatenate".into(),
            });
        };
        let first = self.shape(head).to_vec();
        let ax = norm_axis(axis, first.len());
        let mut out = first.clone();
        out[ax] = 0;
        for &p in parts {
            let s = self.shape(p);
            let same_rest = s.len() == first.len()
                && s.iter()
                    .zip(&first)
                    .enumerate()
                    .all(|(i, (x, y))| i == ax || x == y);
            if !same_rest {
                return Err(GraphError::Shape {
                    op: "Concat".into(),
                    msg: format!("{s:?} does not match {first:?} off axis {axis}"),
                });
            }
            out[ax] += s[ax];
        }
        Ok(self.push(Op::Concat(axis), parts.to_vec(), out))
    }

    pub fn slice(&mut self, a: Id, axis: i64, start: i64, end: i64) -> Id {
        let mut s = self.shape(a).to_vec();
        let ax = norm_axis(axis, s.len());
        s[ax] = end - start;
        self.push(Op::Slice { axis, start, end }, vec![a], s)
    }

    pub fn reshape(&mut self, a: Id, shape: &[i64]) -> Id {
        self.push(Op::Reshape(shape.to_vec()), vec![a], shape.to_vec())
    }

    /// A multi-output node (one of the fused ops) and one [`Op::Pick`] per output, of the
    /// given shapes; returns the picks.
    pub fn multi(&mut self, op: Op, ins: Vec<Id>, shapes: &[Vec<i64>]) -> Vec<Id> {
        let node = self.push(op, ins, vec![]);
        (shapes.iter().enumerate())
            .map(|(k, s)| self.push(Op::Pick(k), vec![node], s.clone()))
            .collect()
    }

    pub fn expand(&mut self, a: Id, shape: &[i64]) -> GResult<Id> {
        let s = broadcast("Expand", self.shape(a), shape)?;
        Ok(self.push(Op::Expand(shape.to_vec()), vec![a], s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy_rules() {
        assert_eq!(broadcast("t", &[4, 3], &[3]).unwrap(), vec![4, 3]);
        assert_eq!(broadcast("t", &[4, 1], &[1, 3]).unwrap(), vec![4, 3]);
        assert_eq!(broadcast("t", &[], &[2, 3]).unwrap(), vec![2, 3]);
        assert!(broadcast("t", &[4, 3], &[2]).is_err());
    }

    #[test]
    fn gemm_checks_inner_dimensions() {
        let mut g = Graph::new(DType::F32);
        let a = g.input("a", &[2, 3]);
        let w = g.input("w", &[4, 3]);
        let y = g.gemm(a, w, None, false, true).unwrap();
        assert_eq!(g.shape(y), &[2, 4]);
        assert!(g.gemm(a, w, None, false, false).is_err());
    }

    #[test]
    fn the_gemms_alone_keep_every_product_its_shapes_and_transposes() {
        let mut g = Graph::new(DType::F32);
        let (x, w, b) = (
            g.input("x", &[-1, 3]),
            g.input("w", &[4, 3]),
            g.input("b", &[4]),
        );
        let h = g.gemm(x, w, Some(b), false, true).unwrap();
        let r = g.relu(h);
        let v = g.input("v", &[4, 2]);
        let y = g.gemm(r, v, None, false, false).unwrap();
        let t = g.gemm(r, x, None, true, false).unwrap();
        g.output("y", y).unwrap();
        g.output("t", t).unwrap();
        let only = g.gemms_only("g.").unwrap();
        let products = |g: &Graph| -> Vec<(Op, Vec<Vec<i64>>, Vec<i64>)> {
            g.nodes
                .iter()
                .filter(|n| matches!(n.op, Op::Gemm { .. }))
                .map(|n| {
                    let ins = n.ins.iter().map(|&i| g.shape(i).to_vec()).collect();
                    (n.op.clone(), ins, n.shape.clone())
                })
                .collect()
        };
        assert_eq!(products(&only), products(&g));
        assert_eq!(only.outputs.len(), 3);
        assert!(
            only.nodes
                .iter()
                .all(|n| matches!(n.op, Op::Gemm { .. } | Op::Input(_)))
        );
    }
}
