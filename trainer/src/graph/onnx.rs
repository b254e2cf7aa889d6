//! Writes a [`Graph`] as an ONNX model (opset 17, IR version 8) with `tract_onnx::pb` and
//! prost, so that ONNX Runtime and tract load the very same bytes.

use super::{DType, Graph, Id, Op};
use prost::Message;
use std::collections::HashMap;
use tract_onnx::pb;

pub const OPSET: i64 = 17;
pub const IR_VERSION: i64 = 8;
/// The domain of the fused nodes (the optimizer's [`Op::FusedAdam`] and [`Op::FusedAverage`],
/// BatchNorm's [`Op::FusedBatchNorm`] and [`Op::FusedBatchNormGrad`], the activations'
/// [`Op::FusedLeakyReluGrad`], the loss's [`Op::FusedBce`] and [`Op::FusedBceGrad`]), which
/// only runtimes that register its kernels load.
pub const FUSED_DOMAIN: &str = "mcugan";

fn elem_type(dtype: DType) -> i32 {
    match dtype {
        DType::F32 => pb::tensor_proto::DataType::Float as i32,
        DType::F64 => pb::tensor_proto::DataType::Double as i32,
    }
}

fn value_info(name: &str, dtype: DType, shape: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = shape
        .iter()
        .map(|&d| Dimension {
            denotation: String::new(),
            value: Some(if d < 0 {
                Value::DimParam("N".into())
            } else {
                Value::DimValue(d)
            }),
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem_type(dtype),
                shape: Some(pb::TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

struct Writer {
    dtype: DType,
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    int_consts: HashMap<Vec<i64>, String>,
}

impl Writer {
    fn ints(&mut self, v: &[i64]) -> String {
        if let Some(n) = self.int_consts.get(v) {
            return n.clone();
        }
        let name = format!("i64_{}", self.int_consts.len());
        self.inits.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![v.len() as i64],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: v.to_vec(),
            ..Default::default()
        });
        self.int_consts.insert(v.to_vec(), name.clone());
        name
    }

    fn float_const(&mut self, name: &str, values: &[f64], shape: &[i64]) {
        let mut t = pb::TensorProto {
            name: name.into(),
            dims: shape.to_vec(),
            data_type: elem_type(self.dtype),
            ..Default::default()
        };
        match self.dtype {
            DType::F32 => t.float_data = values.iter().map(|&v| v as f32).collect(),
            DType::F64 => t.double_data = values.to_vec(),
        }
        self.inits.push(t);
    }

    fn node(&mut self, op: &str, ins: Vec<String>, out: &str, attrs: Vec<pb::AttributeProto>) {
        self.nodes.push(pb::NodeProto {
            input: ins,
            output: vec![out.into()],
            name: format!("n{}_{out}", self.nodes.len()),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
    }

    /// A node of [`FUSED_DOMAIN`] with several outputs.
    fn fused(&mut self, op: &str, ins: Vec<String>, outs: Vec<String>) {
        self.nodes.push(pb::NodeProto {
            input: ins,
            name: format!("n{}_{op}", self.nodes.len()),
            output: outs,
            op_type: op.into(),
            domain: FUSED_DOMAIN.into(),
            ..Default::default()
        });
    }
}

/// Only the nodes that the outputs need, in order.
fn live_nodes(g: &Graph) -> Vec<bool> {
    let mut live = vec![false; g.nodes.len()];
    for (_, id) in &g.outputs {
        live[id.0] = true;
    }
    for i in (0..g.nodes.len()).rev() {
        if live[i] {
            for &Id(j) in &g.nodes[i].ins {
                live[j] = true;
            }
        }
    }
    live
}

/// Encodes the graph as an ONNX `ModelProto`. Inputs are kept even when unused, so that every
/// caller can feed the same names.
pub fn to_model(g: &Graph, name: &str) -> pb::ModelProto {
    let live = live_nodes(g);
    // The value produced by a computing node takes its output's name directly (no copy).
    let mut names: Vec<String> = (0..g.nodes.len()).map(|i| format!("t{i}")).collect();
    let mut renamed = vec![false; g.nodes.len()];
    let mut identities = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if let Op::Input(nm) = &n.op {
            names[i] = nm.clone();
        }
    }
    for (out, id) in &g.outputs {
        let n = &g.nodes[id.0];
        if matches!(n.op, Op::Input(_) | Op::Const(_)) || renamed[id.0] {
            identities.push((names[id.0].clone(), out.clone()));
        } else {
            names[id.0] = out.clone();
            renamed[id.0] = true;
        }
    }
    let mut w = Writer {
        dtype: g.dtype,
        nodes: Vec::new(),
        inits: Vec::new(),
        int_consts: HashMap::new(),
    };
    // A multi-output node's outputs are its picks' names, in order.
    let mut picks: HashMap<usize, Vec<String>> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if let Op::Pick(k) = n.op {
            let outs = picks.entry(n.ins[0].0).or_default();
            if outs.len() <= k {
                outs.resize_with(k + 1, String::new);
            }
            outs[k] = names[i].clone();
        }
    }
    let mut inputs = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if let Op::Input(nm) = &n.op {
            inputs.push(value_info(nm, g.dtype, &n.shape));
            continue;
        }
        if !live[i] {
            continue;
        }
        let ins: Vec<String> = n.ins.iter().map(|id| names[id.0].clone()).collect();
        let out = names[i].clone();
        match &n.op {
            Op::Input(_) => unreachable!(),
            Op::Const(v) => w.float_const(&out, v, &n.shape),
            // tract's Gemm scales in f32: f64 graphs use MatMul (and Transpose, Add).
            Op::Gemm { ta, tb } if g.dtype == DType::F64 => {
                let mut ins = ins;
                for (k, t) in [(0, *ta), (1, *tb)] {
                    if t {
                        let tn = format!("{out}_t{k}");
                        w.node(
                            "Transpose",
                            vec![ins[k].clone()],
                            &tn,
                            vec![attr_ints("perm", &[1, 0])],
                        );
                        ins[k] = tn;
                    }
                }
                if ins.len() == 3 {
                    let mm = format!("{out}_mm");
                    w.node("MatMul", vec![ins[0].clone(), ins[1].clone()], &mm, vec![]);
                    w.node("Add", vec![mm, ins[2].clone()], &out, vec![]);
                } else {
                    w.node("MatMul", ins, &out, vec![]);
                }
            }
            Op::Gemm { ta, tb } => w.node(
                "Gemm",
                ins,
                &out,
                vec![
                    attr_int("transA", *ta as i64),
                    attr_int("transB", *tb as i64),
                ],
            ),
            Op::Add => w.node("Add", ins, &out, vec![]),
            Op::Sub => w.node("Sub", ins, &out, vec![]),
            Op::Mul => w.node("Mul", ins, &out, vec![]),
            Op::Div => w.node("Div", ins, &out, vec![]),
            Op::Pow => w.node("Pow", ins, &out, vec![]),
            Op::Neg => w.node("Neg", ins, &out, vec![]),
            Op::Abs => w.node("Abs", ins, &out, vec![]),
            Op::Sign => w.node("Sign", ins, &out, vec![]),
            Op::Relu => w.node("Relu", ins, &out, vec![]),
            // tract has f32-only kernels for these two: f64 graphs (gradient checks) get the
            // same functions from generic ops.
            Op::LeakyRelu(a) if g.dtype == DType::F64 => {
                let (zero, alpha) = (format!("{out}_zero"), format!("{out}_alpha"));
                w.float_const(&zero, &[0.0], &[]);
                w.float_const(&alpha, &[*a as f64], &[]);
                let (pos, scaled) = (format!("{out}_pos"), format!("{out}_scaled"));
                w.node("Greater", vec![ins[0].clone(), zero], &pos, vec![]);
                w.node("Mul", vec![ins[0].clone(), alpha], &scaled, vec![]);
                w.node("Where", vec![pos, ins[0].clone(), scaled], &out, vec![]);
            }
            Op::LeakyRelu(a) => w.node("LeakyRelu", ins, &out, vec![attr_float("alpha", *a)]),
            Op::Sigmoid if g.dtype == DType::F64 => {
                let one = format!("{out}_one");
                w.float_const(&one, &[1.0], &[]);
                let (neg, exp, den) = (
                    format!("{out}_neg"),
                    format!("{out}_exp"),
                    format!("{out}_den"),
                );
                w.node("Neg", ins, &neg, vec![]);
                w.node("Exp", vec![neg], &exp, vec![]);
                w.node("Add", vec![exp, one.clone()], &den, vec![]);
                w.node("Div", vec![one, den], &out, vec![]);
            }
            Op::Sigmoid => w.node("Sigmoid", ins, &out, vec![]),
            Op::Exp => w.node("Exp", ins, &out, vec![]),
            Op::Log => w.node("Log", ins, &out, vec![]),
            Op::Sqrt => w.node("Sqrt", ins, &out, vec![]),
            Op::ReduceSum { axes, keep } => {
                let axes = w.ints(axes);
                let mut ins = ins;
                ins.push(axes);
                w.node(
                    "ReduceSum",
                    ins,
                    &out,
                    vec![attr_int("keepdims", *keep as i64)],
                )
            }
            Op::ReduceMean { axes, keep } => w.node(
                "ReduceMean",
                ins,
                &out,
                vec![attr_ints("axes", axes), attr_int("keepdims", *keep as i64)],
            ),
            Op::ReduceMax { axes, keep } => w.node(
                "ReduceMax",
                ins,
                &out,
                vec![attr_ints("axes", axes), attr_int("keepdims", *keep as i64)],
            ),
            Op::Concat(axis) => w.node("Concat", ins, &out, vec![attr_int("axis", *axis)]),
            Op::Slice { axis, start, end } => {
                let (s, e, a) = (w.ints(&[*start]), w.ints(&[*end]), w.ints(&[*axis]));
                let mut ins = ins;
                ins.extend([s, e, a]);
                w.node("Slice", ins, &out, vec![])
            }
            Op::Greater => w.node("Greater", ins, &out, vec![]),
            Op::Where => w.node("Where", ins, &out, vec![]),
            Op::Reshape(shape) => {
                let s = w.ints(shape);
                let mut ins = ins;
                ins.push(s);
                w.node("Reshape", ins, &out, vec![])
            }
            Op::Expand(shape) => {
                let s = w.ints(shape);
                let mut ins = ins;
                ins.push(s);
                w.node("Expand", ins, &out, vec![])
            }
            Op::FusedAdam => w.fused("Adam", ins, picks.remove(&i).unwrap_or_default()),
            Op::FusedAverage => w.fused("Average", ins, picks.remove(&i).unwrap_or_default()),
            Op::FusedBatchNorm => w.fused("BatchNorm", ins, picks.remove(&i).unwrap_or_default()),
            Op::FusedBatchNormGrad => {
                w.fused("BatchNormGrad", ins, picks.remove(&i).unwrap_or_default())
            }
            Op::FusedLeakyReluGrad(a) => {
                let alpha = format!("{out}_alpha");
                w.float_const(&alpha, &[*a as f64], &[]);
                let mut ins = ins;
                ins.push(alpha);
                w.fused("LeakyReluGrad", ins, vec![out]);
            }
            Op::FusedBce => w.fused("BinaryCrossEntropy", ins, vec![out]),
            Op::FusedBceGrad => w.fused("BinaryCrossEntropyGrad", ins, vec![out]),
            // Named as the multi-output node's outputs.
            Op::Pick(_) => {}
        }
    }
    for (from, to) in identities {
        w.node("Identity", vec![from], &to, vec![]);
    }
    let outputs = g
        .outputs
        .iter()
        .map(|(name, id)| value_info(name, g.dtype, g.shape(*id)))
        .collect();
    let mut opset_import = vec![pb::OperatorSetIdProto {
        domain: String::new(),
        version: OPSET,
    }];
    if w.nodes.iter().any(|n| n.domain == FUSED_DOMAIN) {
        opset_import.push(pb::OperatorSetIdProto {
            domain: FUSED_DOMAIN.into(),
            version: 1,
        });
    }
    pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import,
        producer_name: "mcugan-trainer".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(pb::GraphProto {
            node: w.nodes,
            name: name.into(),
            initializer: w.inits,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The model's protobuf bytes.
pub fn to_bytes(g: &Graph, name: &str) -> Vec<u8> {
    to_model(g, name).encode_to_vec()
}
