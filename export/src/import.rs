//! A generator trained elsewhere (PyTorch, Keras, ONNX written by hand) read from its ONNX file
//! into the same folded float generator our own checkpoints give, so that it is quantized,
//! proven and verified exactly as ours are.
//!
//! The file is read with tract-onnx's protobuf types and walked node by node in file order
//! (ONNX requires topological order). Each value is either a constant, folded as it is built
//! (`Sqrt(var + eps)` of a decomposed BatchNorm, a shape computed from `Shape`), or a stage of
//! the one chain the board's engine runs: the input features (noise, and a class as one-hot,
//! `OneHot` or an embedding `Gather`, joined by `Concat`), a dense layer (`Gemm`, or `MatMul`
//! then `Add`) with every per-channel affine op after it folded in (`BatchNormalization`, and
//! its decomposed `Sub`/`Div`/`Mul`/`Add` form), `Relu` (or `LeakyRelu` of slope 0), and at
//! the end `Sigmoid` or `Tanh` with any `Reshape`/`Flatten`/`Unsqueeze` to the image. Anything
//! else is refused with the node's name, its op, and why.

use crate::float_model::{FloatGenerator, Output};
use crate::fold::Linear;
use firmware::format::{MAX_CLASSES, MAX_LATENT, MAX_SIDE, MAX_WIDTH};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use thiserror::Error;
use tract_onnx::pb::{self, tensor_proto::DataType};
use tract_onnx::prelude::*;

/// Why a file is not a generator the board can run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("{path}: cannot read as an ONNX model: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: node {node}: {op} {why}")]
    Node {
        path: PathBuf,
        node: String,
        op: String,
        why: String,
    },
    #[error("{path}: {why}")]
    Graph { path: PathBuf, why: String },
}

/// How the graph takes its class, which the verification must feed the same way.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassInput {
    /// Unconditional.
    None,
    /// A second float input holding a one-hot vector.
    OneHot { input: usize },
    /// An integer label input, turned into a one-hot or an embedding inside the graph.
    Label { input: usize, int64: bool },
    /// The last `classes` entries of the noise input itself.
    Joined,
}

/// The graph's inputs as the verification feeds them.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct InputLayout {
    /// Index of the noise input among the graph's inputs.
    pub noise: usize,
    pub class: ClassInput,
    /// Inputs in the graph's order: name, width (1 for a label) and rank.
    pub inputs: Vec<(String, usize, usize)>,
    /// The batch size when the graph fixes it.
    pub batch: Option<usize>,
}

impl InputLayout {
    /// Our own `generator.onnx` (`trainer::gan::generator_onnx`): the noise, then for a
    /// conditional model a one-hot input.
    pub fn ours(latent: usize, classes: usize) -> Self {
        let mut inputs = vec![("z".to_string(), latent, 2)];
        if classes > 0 {
            inputs.push(("onehot".to_string(), classes, 2));
        }
        InputLayout {
            noise: 0,
            class: if classes > 0 {
                ClassInput::OneHot { input: 1 }
            } else {
                ClassInput::None
            },
            inputs,
            batch: None,
        }
    }
}

/// What was recognised, for the export report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Imported {
    #[serde(skip)]
    pub generator: FloatGenerator,
    pub layout: InputLayout,
    /// How the class reaches the first layer: `one-hot`, `embedding`, `none`.
    pub class_encoding: String,
    pub output: Output,
    pub width: usize,
    pub height: usize,
    /// Layers as `inputs×outputs`, with what was folded into each.
    pub layers: Vec<String>,
}

/// Options the graph cannot say itself.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// A single float input whose last `classes` entries are a one-hot class.
    pub joined_classes: Option<usize>,
}

#[derive(Clone, Debug)]
struct Const {
    shape: Vec<usize>,
    data: Vec<f64>,
}

impl Const {
    fn scalar(v: f64) -> Self {
        Const {
            shape: vec![],
            data: vec![v],
        }
    }

    /// One value per channel of `n`, broadcast from a scalar, `[n]`, `[1, n]` or `[1, 1, n]`.
    fn per_channel(&self, n: usize) -> Option<Vec<f64>> {
        let non_unit: Vec<usize> = self.shape.iter().copied().filter(|&d| d != 1).collect();
        match (self.data.len(), non_unit.as_slice()) {
            (1, _) => Some(vec![self.data[0]; n]),
            (len, [d]) if len == n && *d == n && self.shape.last() == Some(&n) => {
                Some(self.data.clone())
            }
            _ => None,
        }
    }
}

/// A part of the first layer's input, in the order the graph joins them.
#[derive(Clone, Debug)]
enum Part {
    Noise {
        input: usize,
        width: usize,
    },
    /// A one-hot (from a float input or `OneHot`) of `classes`: `off` everywhere, `on` at the
    /// class.
    OneHot {
        classes: usize,
        off: f64,
        on: f64,
    },
    /// Rows of an embedding table, one per class.
    Embedding {
        table: Const,
    },
}

impl Part {
    fn width(&self) -> usize {
        match self {
            Part::Noise { width, .. } => *width,
            Part::OneHot { classes, .. } => *classes,
            Part::Embedding { table } => table.shape[1],
        }
    }
}

#[derive(Clone, Debug)]
enum Value {
    Const(Const),
    /// A float input not yet known as noise or one-hot, or an integer label input.
    Input(usize),
    Features(Vec<Part>),
    /// The pre-activation of layer `k`, affine ops folded in as they come.
    Dense(usize),
    /// ReLU of layer `k`, then `scale · x + shift` per channel (a BatchNorm after the ReLU),
    /// which the next layer folds into its columns.
    Hidden {
        layer: usize,
        scale: Vec<f64>,
        shift: Vec<f64>,
    },
    /// A value transposed to `[width, batch]`, which only a `Gemm` with `transA = 1` reads.
    Transposed(Box<Value>),
    /// The last layer's values, perhaps reshaped and perhaps through the output function.
    Out {
        layer: usize,
        output: Option<Output>,
        shape: Option<Vec<i64>>,
    },
}

struct GraphInput {
    name: String,
    /// `Some(true)` for an int64 label, `Some(false)` for int32, `None` for floats.
    int: Option<bool>,
    width: usize,
    rank: usize,
    batch: Option<usize>,
}

struct Walker<'a> {
    path: &'a Path,
    dir: Option<String>,
    inputs: Vec<GraphInput>,
    values: HashMap<String, Value>,
    /// Non-constant values already consumed: the engine runs a chain, so each is read once.
    used: HashMap<String, String>,
    layers: Vec<Linear>,
    folded: Vec<Vec<String>>,
    first_input: Option<Vec<Part>>,
    label_encoding: Option<&'static str>,
}

/// Reads `path` and recognises its generator, or says which node stops it.
pub fn import_onnx(path: &Path, opts: &ImportOptions) -> Result<Imported, ImportError> {
    let read_err = |reason: String| ImportError::Read {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_file() {
        return Err(read_err("no such file".into()));
    }
    let proto = tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| read_err(format!("not an ONNX protobuf ({e})")))?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| read_err("the model holds no graph".into()))?;
    let mut w = Walker {
        path,
        dir: path.parent().and_then(|d| d.to_str()).map(String::from),
        inputs: Vec::new(),
        values: HashMap::new(),
        used: HashMap::new(),
        layers: Vec::new(),
        folded: Vec::new(),
        first_input: None,
        label_encoding: None,
    };
    for t in &graph.initializer {
        let c = w.tensor(t, "initializer")?;
        w.values.insert(t.name.clone(), Value::Const(c));
    }
    for vi in &graph.input {
        if w.values.contains_key(&vi.name) {
            continue;
        }
        let input = w.graph_input(vi)?;
        w.values
            .insert(vi.name.clone(), Value::Input(w.inputs.len()));
        w.inputs.push(input);
    }
    for node in &graph.node {
        w.node(node)?;
    }
    w.finish(graph, opts)
}

/// The inputs an op reads before the importer indexes them (checked on every node, so that a
/// malformed one is refused, never a panic).
fn min_inputs(op: &str) -> usize {
    match op {
        "BatchNormalization" => 5,
        "OneHot" => 3,
        "Gemm" | "MatMul" | "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Reshape" | "Gather" => 2,
        "Constant" => 0,
        _ => 1,
    }
}

fn attr<'n>(node: &'n pb::NodeProto, name: &str) -> Option<&'n pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_f(node: &pb::NodeProto, name: &str, default: f64) -> f64 {
    attr(node, name).map_or(default, |a| a.f as f64)
}

fn attr_i(node: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

impl Walker<'_> {
    fn graph_err(&self, why: impl Into<String>) -> ImportError {
        ImportError::Graph {
            path: self.path.to_path_buf(),
            why: why.into(),
        }
    }

    fn node_err(&self, node: &pb::NodeProto, why: impl Into<String>) -> ImportError {
        ImportError::Node {
            path: self.path.to_path_buf(),
            node: if node.name.is_empty() {
                format!(
                    "(unnamed, output {})",
                    node.output.first().map_or("?", |s| s)
                )
            } else {
                node.name.clone()
            },
            op: node.op_type.clone(),
            why: why.into(),
        }
    }

    fn tensor(&self, t: &pb::TensorProto, what: &str) -> Result<Const, ImportError> {
        let fail = |e: String| self.graph_err(format!("{what} {}: {e}", t.name));
        let tensor = tract_onnx::tensor::load_tensor(
            &*tract_onnx::data_resolver::default(),
            t,
            self.dir.as_deref(),
        )
        .map_err(|e| fail(format!("cannot load ({e})")))?;
        let shape = tensor.shape().to_vec();
        let as_f64 = tensor
            .cast_to::<f64>()
            .map_err(|e| fail(format!("not numeric ({e})")))?;
        let data = as_f64
            .to_plain_array_view::<f64>()
            .map_err(|e| fail(e.to_string()))?
            .iter()
            .copied()
            .collect();
        Ok(Const { shape, data })
    }

    fn graph_input(&self, vi: &pb::ValueInfoProto) -> Result<GraphInput, ImportError> {
        let bad = |why: &str| self.graph_err(format!("input {}: {why}", vi.name));
        let Some(pb::type_proto::Value::TensorType(t)) =
            vi.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(bad("not a tensor"));
        };
        let int = match DataType::try_from(t.elem_type) {
            Ok(DataType::Float | DataType::Double | DataType::Float16) => None,
            Ok(DataType::Int64) => Some(true),
            Ok(DataType::Int32) => Some(false),
            _ => return Err(bad("neither float nor an integer label")),
        };
        let dims: Vec<Option<usize>> = t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => {
                            Some(v as usize)
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (batch, width) = match (int, dims.as_slice()) {
            (None, [b, Some(w)]) => (*b, *w),
            (Some(_), [b]) | (Some(_), [b, Some(1)]) => (*b, 1),
            _ => {
                return Err(bad(&format!(
                    "shape {dims:?}: expected [batch, width] noise or a [batch] label"
                )));
            }
        };
        Ok(GraphInput {
            name: vi.name.clone(),
            int,
            width,
            rank: dims.len(),
            batch,
        })
    }

    /// The value `name` read by `node`; a non-constant value may be read once only.
    fn take(&mut self, node: &pb::NodeProto, name: &str) -> Result<Value, ImportError> {
        let Some(v) = self.values.get(name).cloned() else {
            return Err(self.undefined(node, name));
        };
        if !matches!(v, Value::Const(_)) {
            let reader = if node.name.is_empty() {
                node.op_type.clone()
            } else {
                node.name.clone()
            };
            if let Some(first) = self.used.insert(name.to_string(), reader) {
                return Err(self.node_err(
                    node,
                    format!(
                        "reads {name}, which {first} reads too: the board's engine runs one \
                         chain of layers, without branches or skip connections"
                    ),
                ));
            }
        }
        Ok(v)
    }

    fn constant(&mut self, node: &pb::NodeProto, k: usize) -> Result<Option<Const>, ImportError> {
        match node.input.get(k).filter(|n| !n.is_empty()) {
            None => Ok(None),
            Some(name) => match self.values.get(name) {
                Some(Value::Const(c)) => Ok(Some(c.clone())),
                Some(_) => {
                    Err(self.node_err(node, format!("input {k} ({name}) must be a constant")))
                }
                None => Err(self.undefined(node, name)),
            },
        }
    }

    fn undefined(&self, node: &pb::NodeProto, name: &str) -> ImportError {
        self.node_err(
            node,
            format!(
                "reads {name}, which is neither a graph input, an initializer nor the output \
                 of an earlier node (a missing initializer, or nodes out of order: a cycle)"
            ),
        )
    }

    fn width_of(&self, v: &Value) -> Option<usize> {
        match v {
            Value::Input(i) => Some(self.inputs[*i].width),
            Value::Features(parts) => Some(parts.iter().map(Part::width).sum()),
            Value::Dense(k) | Value::Hidden { layer: k, .. } | Value::Out { layer: k, .. } => {
                Some(self.layers[*k].outputs)
            }
            Value::Const(_) | Value::Transposed(_) => None,
        }
    }

    fn node(&mut self, node: &pb::NodeProto) -> Result<(), ImportError> {
        let op = node.op_type.as_str();
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(self.node_err(node, format!("is from domain {}", node.domain)));
        }
        let out = node
            .output
            .first()
            .cloned()
            .ok_or_else(|| self.node_err(node, "has no output"))?;
        let needed = min_inputs(op);
        if node.input.len() < needed {
            return Err(self.node_err(
                node,
                format!(
                    "has {} inputs; it takes at least {needed}",
                    node.input.len()
                ),
            ));
        }
        // Constants in, constant out: fold.
        let all_const = node
            .input
            .iter()
            .filter(|n| !n.is_empty())
            .all(|n| matches!(self.values.get(n), Some(Value::Const(_))));
        if op == "Constant" {
            let t = attr(node, "value")
                .and_then(|a| a.t.as_ref())
                .map(|t| self.tensor(t, "constant"))
                .transpose()?
                .or_else(|| attr(node, "value_float").map(|a| Const::scalar(a.f as f64)))
                .or_else(|| attr(node, "value_int").map(|a| Const::scalar(a.i as f64)))
                .or_else(|| {
                    attr(node, "value_ints").map(|a| Const {
                        shape: vec![a.ints.len()],
                        data: a.ints.iter().map(|&v| v as f64).collect(),
                    })
                })
                .or_else(|| {
                    attr(node, "value_floats").map(|a| Const {
                        shape: vec![a.floats.len()],
                        data: a.floats.iter().map(|&v| v as f64).collect(),
                    })
                })
                .ok_or_else(|| self.node_err(node, "holds no value this importer reads"))?;
            self.values.insert(out, Value::Const(t));
            return Ok(());
        }
        if all_const && !node.input.is_empty() {
            let c = self.fold_constant(node)?;
            self.values.insert(out, Value::Const(c));
            return Ok(());
        }
        let value = match op {
            "Identity" | "Dropout" | "Cast" => self.take(node, &node.input[0])?,
            "Gemm" => self.gemm(node)?,
            "MatMul" => self.matmul(node)?,
            "Add" | "Sub" | "Mul" | "Div" => self.affine(node)?,
            "BatchNormalization" => self.batch_norm(node)?,
            "Relu" => self.relu(node)?,
            "LeakyRelu" => {
                let slope = attr(node, "alpha").map_or(0.01, |a| a.f);
                if slope != 0.0 {
                    return Err(self.node_err(
                        node,
                        format!(
                            "with slope {slope}: the board's integer engine clamps negative values \
                             to zero (ReLU); a slope would need a second requantization per \
                             channel, which the model format does not have. Retrain with ReLU"
                        ),
                    ));
                }
                self.relu(node)?
            }
            "Sigmoid" | "Tanh" => self.output(node)?,
            "Reshape" | "Flatten" | "Unsqueeze" | "Squeeze" => self.reshape(node)?,
            "Concat" => self.concat(node)?,
            "Gather" => self.gather(node)?,
            "OneHot" => self.one_hot(node)?,
            "Shape" => self.shape(node)?,
            "Transpose" => self.transpose(node)?,
            "Conv" | "ConvTranspose" => {
                return Err(self.node_err(
                    node,
                    "is not a dense layer; the board's engine runs MLP generators",
                ));
            }
            _ => {
                return Err(self.node_err(
                    node,
                    "is not part of the MLP generator family the board's engine runs (dense \
                     layers, BatchNorm, ReLU, then Sigmoid or Tanh)",
                ));
            }
        };
        self.values.insert(out, value);
        Ok(())
    }

    fn fold_constant(&mut self, node: &pb::NodeProto) -> Result<Const, ImportError> {
        let ins: Vec<Const> = (0..node.input.len())
            .map(|k| self.constant(node, k))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        if ins.len() < min_inputs(&node.op_type) {
            return Err(self.node_err(node, "lacks an input it needs"));
        }
        let unary = |f: fn(f64) -> f64| Const {
            shape: ins[0].shape.clone(),
            data: ins[0].data.iter().map(|&v| f(v)).collect(),
        };
        let binary = |f: fn(f64, f64) -> f64| -> Option<Const> {
            let (a, b) = (&ins[0], &ins[1]);
            let n = a.data.len().max(b.data.len());
            let at = |c: &Const, i: usize| c.data[if c.data.len() == 1 { 0 } else { i }];
            if (a.data.len() != n && a.data.len() != 1) || (b.data.len() != n && b.data.len() != 1)
            {
                return None;
            }
            let shape = if a.data.len() >= b.data.len() {
                a.shape.clone()
            } else {
                b.shape.clone()
            };
            Some(Const {
                shape,
                data: (0..n).map(|i| f(at(a, i), at(b, i))).collect(),
            })
        };
        let folded = match node.op_type.as_str() {
            "Identity" | "Cast" => Some(ins[0].clone()),
            "Sqrt" => Some(unary(f64::sqrt)),
            "Reciprocal" => Some(unary(|v| 1.0 / v)),
            "Neg" => Some(unary(|v| -v)),
            "Add" => binary(|a, b| a + b),
            "Sub" => binary(|a, b| a - b),
            "Mul" => binary(|a, b| a * b),
            "Div" => binary(|a, b| a / b),
            "Pow" => binary(f64::powf),
            "Unsqueeze" | "Squeeze" | "Reshape" | "Flatten" => Some(ins[0].clone()),
            "Transpose" if ins[0].shape.len() == 2 => {
                let (r, c) = (ins[0].shape[0], ins[0].shape[1]);
                Some(Const {
                    shape: vec![c, r],
                    data: (0..r * c)
                        .map(|i| ins[0].data[(i % r) * c + i / r])
                        .collect(),
                })
            }
            "Concat" => Some(Const {
                shape: vec![ins.iter().map(|c| c.data.len()).sum()],
                data: ins.iter().flat_map(|c| c.data.clone()).collect(),
            }),
            "Gather" => {
                let idx = &ins[1];
                let data = idx
                    .data
                    .iter()
                    .map(|&i| {
                        let n = ins[0].data.len() as i64;
                        let i = if i < 0.0 { i as i64 + n } else { i as i64 };
                        ins[0].data.get(i as usize).copied()
                    })
                    .collect::<Option<Vec<f64>>>();
                data.map(|data| Const {
                    shape: idx.shape.clone(),
                    data,
                })
            }
            _ => None,
        };
        folded.ok_or_else(|| self.node_err(node, "on constants is not one this importer folds"))
    }

    /// A new dense layer reading `input` with weight `[out][in]` and bias.
    fn dense(
        &mut self,
        node: &pb::NodeProto,
        input: Value,
        weight: Vec<f64>,
        outputs: usize,
        bias: Vec<f64>,
    ) -> Result<Value, ImportError> {
        let Some(inputs) = self.width_of(&input) else {
            return Err(self.node_err(node, "needs an activation input"));
        };
        if weight.len() != inputs * outputs || outputs == 0 {
            return Err(self.node_err(
                node,
                format!(
                    "has a weight of {} values for {inputs} inputs",
                    weight.len()
                ),
            ));
        }
        if outputs > MAX_WIDTH {
            return Err(self.node_err(
                node,
                format!("has {outputs} outputs; the board's engine takes at most {MAX_WIDTH}"),
            ));
        }
        let (mut weight, mut bias) = (weight, bias);
        match input {
            Value::Input(i) if self.inputs[i].int.is_none() => {
                self.set_first(
                    node,
                    vec![Part::Noise {
                        input: i,
                        width: inputs,
                    }],
                )?;
            }
            Value::Features(parts) => self.set_first(node, parts)?,
            Value::Hidden {
                layer,
                scale,
                shift,
            } if layer + 1 == self.layers.len() => {
                for o in 0..outputs {
                    let row = &mut weight[o * inputs..(o + 1) * inputs];
                    bias[o] += row.iter().zip(&shift).map(|(w, s)| w * s).sum::<f64>();
                    for (w, s) in row.iter_mut().zip(&scale) {
                        *w *= s;
                    }
                }
            }
            _ => {
                return Err(self.node_err(
                    node,
                    "reads something other than the input features or the previous layer's \
                     ReLU: the board's engine runs Linear, ReLU, …, Linear, Sigmoid",
                ));
            }
        }
        self.layers.push(Linear {
            inputs,
            outputs,
            weight: weight.iter().map(|&v| v as f32).collect(),
            bias: bias.iter().map(|&v| v as f32).collect(),
        });
        self.folded.push(vec![node.op_type.clone()]);
        Ok(Value::Dense(self.layers.len() - 1))
    }

    fn set_first(&mut self, node: &pb::NodeProto, parts: Vec<Part>) -> Result<(), ImportError> {
        if self.first_input.is_some() || !self.layers.is_empty() {
            return Err(self.node_err(node, "reads the graph's input a second time"));
        }
        self.first_input = Some(parts);
        Ok(())
    }

    /// `Transpose` of an activation: kept for a `Gemm` with `transA = 1` to undo.
    fn transpose(&mut self, node: &pb::NodeProto) -> Result<Value, ImportError> {
        let perm = attr(node, "perm")
            .map(|a| a.ints.clone())
            .unwrap_or_default();
        if !perm.is_empty() && perm != [1, 0] {
            return Err(self.node_err(node, format!("with perm {perm:?} is not a 2-D transpose")));
        }
        Ok(match self.take(node, &node.input[0])? {
            Value::Transposed(inner) => *inner,
            other => Value::Transposed(Box::new(other)),
        })
    }

    fn gemm(&mut self, node: &pb::NodeProto) -> Result<Value, ImportError> {
        let trans_a = attr_i(node, "transA", 0) != 0;
        let input = match (trans_a, self.take(node, &node.input[0])?) {
            (true, Value::Transposed(inner)) => *inner,
            (false, Value::Transposed(_)) | (true, _) => {
                return Err(self.node_err(
                    node,
                    "reads its activation transposed ([features, batch]); a dense layer of a \
                     batch reads it as [batch, features] (or a Transpose of that with transA=1)",
                ));
            }
            (false, v) => v,
        };
        let b = self
            .constant(node, 1)?
            .ok_or_else(|| self.node_err(node, "has no weight"))?;
        if b.shape.len() != 2 {
            return Err(self.node_err(node, format!("has a weight of shape {:?}", b.shape)));
        }
        let (alpha, beta) = (attr_f(node, "alpha", 1.0), attr_f(node, "beta", 1.0));
        let trans_b = attr_i(node, "transB", 0) != 0;
        let (outputs, inputs) = if trans_b {
            (b.shape[0], b.shape[1])
        } else {
            (b.shape[1], b.shape[0])
        };
        let weight: Vec<f64> = (0..outputs * inputs)
            .map(|i| {
                let (o, k) = (i / inputs, i % inputs);
                alpha
                    * if trans_b {
                        b.data[o * inputs + k]
                    } else {
                        b.data[k * outputs + o]
                    }
            })
            .collect();
        let bias = match self.constant(node, 2)? {
            None => vec![0.0; outputs],
            Some(c) => c
                .per_channel(outputs)
                .ok_or_else(|| self.node_err(node, format!("has a bias of shape {:?}", c.shape)))?
                .iter()
                .map(|v| beta * v)
                .collect(),
        };
        self.dense(node, input, weight, outputs, bias)
    }

    fn matmul(&mut self, node: &pb::NodeProto) -> Result<Value, ImportError> {
        let input = self.take(node, &node.input[0])?;
        let b = self.constant(node, 1).map_err(|_| {
            self.node_err(node, "must multiply the activation by a constant weight")
        })?;
        let b = b.ok_or_else(|| self.node_err(node, "has no weight"))?;
        if b.shape.len() != 2 {
            return Err(self.node_err(node, format!("has a weight of shape {:?}", b.shape)));
        }
        let (inputs, outputs) = (b.shape[0], b.shape[1]);
        let weight = (0..outputs * inputs)
            .map(|i| b.data[(i % inputs) * outputs + i / inputs])
            .collect();
        self.dense(node, input, weight, outputs, vec![0.0; outputs])
    }

    /// `Add`/`Sub`/`Mul`/`Div` of a layer's values (before or after its ReLU) by a constant.
    fn affine(&mut self, node: &pb::NodeProto) -> Result<Value, ImportError> {
        let op = node.op_type.clone();
        let const_first = matches!(self.values.get(&node.input[0]), Some(Value::Const(_)));
        let (vi, ci) = if const_first { (1, 0) } else { (0, 1) };
        let v = self.take(node, &node.input[vi])?;
        let c = self
            .constant(node, ci)?
            .expect("a binary op has two inputs");
        let width = self.width_of(&v).unwrap_or(0);
        let per = c.per_channel(width).ok_or_else(|| {
            self.node_err(
                node,
                format!(
                    "by a constant of shape {:?}: only per-channel constants fold into a layer",
                    c.shape
                ),
            )
        })?;
        // y = a·x + b per channel.
        let (a, b): (Vec<f64>, Vec<f64>) = match (op.as_str(), const_first) {
            ("Add", _) => (vec![1.0; width], per),
            ("Sub", false) => (vec![1.0; width], per.iter().map(|v| -v).collect()),
            ("Sub", true) => (vec![-1.0; width], per),
            ("Mul", _) => (per, vec![0.0; width]),
            ("Div", false) => (per.iter().map(|v| 1.0 / v).collect(), vec![0.0; width]),
            _ => {
                return Err(self.node_err(node, "divides a constant by a layer's values"));
            }
        };
        self.apply_affine(node, v, &a, &b)
    }

    fn apply_affine(
        &mut self,
        node: &pb::NodeProto,
        v: Value,
        a: &[f64],
        b: &[f64],
    ) -> Result<Value, ImportError> {
        match v {
            Value::Dense(k) => {
                let l = &mut self.layers[k];
                for o in 0..l.outputs {
                    for w in &mut l.weight[o * l.inputs..(o + 1) * l.inputs] {
                        *w = (*w as f64 * a[o]) as f32;
                    }
                    l.bias[o] = (l.bias[o] as f64 * a[o] + b[o]) as f32;
                }
                self.folded[k].push(node.op_type.clone());
                Ok(Value::Dense(k))
            }
            Value::Hidden {
                layer,
                scale,
                shift,
            } => Ok(Value::Hidden {
                layer,
                scale: scale.iter().zip(a).map(|(s, a)| s * a).collect(),
                shift: shift
                    .iter()
                    .zip(a)
                    .zip(b)
                    .map(|((t, a), b)| t * a + b)
                    .collect(),
            }),
            _ => Err(self.node_err(
                node,
                "applies to something other than a dense layer's values; only per-channel \
                 affine ops after a layer fold into it",
            )),
        }
    }

    fn batch_norm(&mut self, node: &pb::NodeProto) -> Result<Value, ImportError> {
        if attr_i(node, "training_mode", 0) != 0 || node.output.len() > 1 {
            return Err(self.node_err(node, "is in training mode; export the model in eval mode"));
        }
        let v = self.take(node, &node.input[0])?;
        let width = self.width_of(&v).unwrap_or(0);
        let mut p = Vec::new();
        for k in 1..=4 {
            let c = self
                .constant(node, k)?
                .ok_or_else(|| self.node_err(node, format!("has no input {k}")))?;
            p.push(c.per_channel(width).ok_or_else(|| {
                self.node_err(node, format!("input {k} does not have {width} channels"))
            })?);
        }
        let eps = attr_f(node, "epsilon", 1e-5);
        let (gamma, beta, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
        let mut a = Vec::with_capacity(width);
        let mut b = Vec::with_capacity(width);
        for c in 0..width {
            let denom = var[c] + eps;
            if denom.is_nan() || denom <= 0.0 {
                return Err(self.node_err(
                    node,
                    format!(
                        "channel {c}: running variance {} + eps is not positive",
                        var[c]
                    ),
                ));
            }
            let s = gamma[c] / denom.sqrt();
            a.push(s);
            b.push(beta[c] - s * mean[c]);
        }
        self.apply_affine(node, v, &a, &b)
    }

    fn relu(&mut self, node: &pb::NodeProto) -> Result<Value, ImportError> {
        match self.take(node, &node.input[0])? {
            Value::Dense(layer) => {
                let n = self.layers[layer].outputs;
                self.folded[layer].push("Relu".into());
                Ok(Value::Hidden {
                    layer,
                    scale: vec![1.0; n],
                    shift: vec![0.0; n],
                })
            }
            _ => Err(self.node_err(node, "must follow a dense layer")),
        }
    }

    fn output(&mut self, node: &pb::NodeProto) -> Result<Value, ImportError> {
        let f = if node.op_type == "Tanh" {
            Output::Tanh
        } else {
            Output::Sigmoid
        };
        match self.take(node, &node.input[0])? {
            Value::Dense(layer) => Ok(Value::Out {
                layer,
                output: Some(f),
                shape: None,
            }),
            Value::Out {
                layer,
                output: None,
                shape,
            } => Ok(Value::Out {
                layer,
                output: Some(f),
                shape,
            }),
            _ => Err(self.node_err(node, "must follow the last dense layer")),
        }
    }

    fn reshape(&mut self, node: &pb::NodeProto) -> Result<Value, ImportError> {
        let v = self.take(node, &node.input[0])?;
        let shape = if node.op_type == "Reshape" {
            let c = self
                .constant(node, 1)?
                .ok_or_else(|| self.node_err(node, "has no shape"))?;
            Some(c.data.iter().map(|&d| d as i64).collect::<Vec<i64>>())
        } else {
            None
        };
        let width = self.width_of(&v).unwrap_or(0);
        let last = self.layers.len().checked_sub(1);
        match v {
            // The last layer's values take the image's shape (a flatten or a squeeze leaves
            // the image square).
            Value::Dense(layer) | Value::Out { layer, .. } if Some(layer) == last => {
                let output = match &v {
                    Value::Out { output, .. } => *output,
                    _ => None,
                };
                if let Some(s) = &shape {
                    let fixed: i64 = s.iter().skip(1).product();
                    if s.iter().skip(1).any(|&d| d < 1) || fixed != width as i64 {
                        return Err(self.node_err(
                            node,
                            format!("to {s:?} does not give {width} pixels per sample"),
                        ));
                    }
                }
                Ok(Value::Out {
                    layer,
                    output,
                    shape,
                })
            }
            // Anything else must stay `[batch, width]`.
            other => {
                let keeps_rows = shape.as_ref().is_none_or(|s| {
                    s.len() == 2 && (s[1] == width as i64 || (s[1] == -1 && s[0] <= 0))
                });
                if keeps_rows {
                    Ok(other)
                } else {
                    Err(self.node_err(
                        node,
                        "changes the shape of a value inside the network; only the output may \
                         be reshaped (to the image)",
                    ))
                }
            }
        }
    }

    fn concat(&mut self, node: &pb::NodeProto) -> Result<Value, ImportError> {
        let axis = attr_i(node, "axis", 1);
        if axis != 1 && axis != -1 {
            return Err(self.node_err(node, format!("on axis {axis}; features join on axis 1")));
        }
        let mut parts = Vec::new();
        for name in node.input.clone() {
            match self.take(node, &name)? {
                Value::Input(i) if self.inputs[i].int.is_none() => parts.push(Part::Noise {
                    input: i,
                    width: self.inputs[i].width,
                }),
                Value::Features(p) => parts.extend(p),
                _ => {
                    return Err(self.node_err(
                        node,
                        format!("joins {name}, which is not a graph input or a class encoding"),
                    ));
                }
            }
        }
        Ok(Value::Features(parts))
    }

    fn label_input(&mut self, node: &pb::NodeProto, k: usize) -> Result<(), ImportError> {
        match self.take(node, &node.input[k])? {
            Value::Input(i) if self.inputs[i].int.is_some() => Ok(()),
            _ => Err(self.node_err(node, "must read the integer label input")),
        }
    }

    fn gather(&mut self, node: &pb::NodeProto) -> Result<Value, ImportError> {
        let table = self
            .constant(node, 0)?
            .ok_or_else(|| self.node_err(node, "has no table"))?;
        if attr_i(node, "axis", 0) != 0 || table.shape.len() != 2 {
            return Err(self.node_err(
                node,
                "is not an embedding lookup (a [classes, width] table on axis 0)",
            ));
        }
        self.label_input(node, 1)?;
        self.label_encoding = Some("embedding");
        Ok(Value::Features(vec![Part::Embedding { table }]))
    }

    fn one_hot(&mut self, node: &pb::NodeProto) -> Result<Value, ImportError> {
        self.label_input(node, 0)?;
        let depth = self
            .constant(node, 1)?
            .ok_or_else(|| self.node_err(node, "has no depth"))?;
        let values = self
            .constant(node, 2)?
            .ok_or_else(|| self.node_err(node, "has no values"))?;
        if values.data.len() != 2 || attr_i(node, "axis", -1) != -1 {
            return Err(self.node_err(node, "is not a one-hot on the last axis"));
        }
        self.label_encoding = Some("one-hot (OneHot)");
        Ok(Value::Features(vec![Part::OneHot {
            classes: depth.data[0] as usize,
            off: values.data[0],
            on: values.data[1],
        }]))
    }

    /// `Shape` of an activation: the batch as −1 (which `Reshape` reads as "the rest").
    fn shape(&mut self, node: &pb::NodeProto) -> Result<Value, ImportError> {
        let name = &node.input[0];
        let v =
            self.values.get(name).cloned().ok_or_else(|| {
                self.node_err(node, format!("reads {name}, which is not defined"))
            })?;
        let width = self
            .width_of(&v)
            .ok_or_else(|| self.node_err(node, "of a constant"))?;
        Ok(Value::Const(Const {
            shape: vec![2],
            data: vec![-1.0, width as f64],
        }))
    }

    fn finish(
        mut self,
        graph: &pb::GraphProto,
        opts: &ImportOptions,
    ) -> Result<Imported, ImportError> {
        if graph.output.len() != 1 {
            return Err(self.graph_err(format!(
                "has {} outputs; a generator has one, the image",
                graph.output.len()
            )));
        }
        let name = &graph.output[0].name;
        let (layer, output, shape) = match self.values.get(name) {
            Some(Value::Out {
                layer,
                output: Some(f),
                shape,
            }) => (*layer, *f, shape.clone()),
            _ => {
                return Err(self.graph_err(format!(
                    "output {name} is not the last dense layer through Sigmoid or Tanh"
                )));
            }
        };
        if layer + 1 != self.layers.len() {
            return Err(self.graph_err("the output is not the last layer"));
        }
        let pixels = self.layers[layer].outputs;
        let (width, height) = image_dims(shape.as_deref(), pixels)
            .ok_or_else(|| self.graph_err(format!(
                "an output of {pixels} values{} is not a square image of at most {MAX_SIDE}×{MAX_SIDE}",
                shape.map(|s| format!(" shaped {s:?}")).unwrap_or_default()
            )))?;
        let parts = self
            .first_input
            .take()
            .ok_or_else(|| self.graph_err("no dense layer reads the graph's input"))?;
        self.assemble(parts, opts, output, width, height)
    }

    /// Rewrites the first layer's columns into the board's input: the noise, then a one-hot
    /// class at level 1.
    fn assemble(
        mut self,
        parts: Vec<Part>,
        opts: &ImportOptions,
        output: Output,
        width: usize,
        height: usize,
    ) -> Result<Imported, ImportError> {
        let noises: Vec<(usize, usize)> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Noise { input, width } => Some((*input, *width)),
                _ => None,
            })
            .collect();
        let mut parts = parts;
        let mut class = ClassInput::None;
        let mut encoding = "none".to_string();
        // Two float inputs joined: one is a one-hot class. Which one, the names or the
        // widths tell.
        if noises.len() == 2 {
            let hint = |i: usize| {
                let n = self.inputs[i].name.to_ascii_lowercase();
                ["label", "class", "onehot", "one_hot", "cond", "digit"]
                    .iter()
                    .any(|h| n.contains(h))
                    || n == "y"
                    || n == "c"
            };
            let (a, b) = (noises[0], noises[1]);
            let onehot = match (hint(a.0), hint(b.0)) {
                (true, false) => a,
                (false, true) => b,
                _ if a.1 <= MAX_CLASSES && b.1 > MAX_CLASSES => a,
                _ if b.1 <= MAX_CLASSES && a.1 > MAX_CLASSES => b,
                _ => {
                    return Err(self.graph_err(format!(
                        "two float inputs, {} and {}: cannot tell which is the class (name it \
                         label, class or onehot)",
                        self.inputs[a.0].name, self.inputs[b.0].name
                    )));
                }
            };
            for p in &mut parts {
                if matches!(p, Part::Noise { input, .. } if *input == onehot.0) {
                    *p = Part::OneHot {
                        classes: onehot.1,
                        off: 0.0,
                        on: 1.0,
                    };
                }
            }
            class = ClassInput::OneHot { input: onehot.0 };
            encoding = "one-hot (a float input)".into();
        } else if noises.len() != 1 {
            return Err(self.graph_err(format!(
                "the first layer reads {} float inputs; a generator reads its noise (and at \
                 most one class)",
                noises.len()
            )));
        }
        let Some(&Part::Noise {
            input: noise,
            width: mut latent,
        }) = parts.iter().find(|p| matches!(p, Part::Noise { .. }))
        else {
            return Err(self.graph_err("no noise input"));
        };
        let first = &self.layers[0];
        let (inputs, outputs) = (first.inputs, first.outputs);
        let col = |o: usize, i: usize| first.weight[o * inputs + i] as f64;
        let mut noise_cols: Vec<usize> = Vec::new();
        // Per output: the class columns at level 1, and what the encoding adds to the bias.
        let mut class_cols: Vec<Vec<f64>> = Vec::new();
        let mut extra_bias = vec![0.0f64; outputs];
        let mut classes = 0;
        let mut at = 0;
        for p in &parts {
            let w = p.width();
            match p {
                Part::Noise { .. } => noise_cols.extend(at..at + w),
                Part::OneHot {
                    classes: k,
                    off,
                    on,
                } => {
                    classes = *k;
                    for (o, bias) in extra_bias.iter_mut().enumerate() {
                        let mut row = Vec::with_capacity(*k);
                        for c in 0..*k {
                            row.push((on - off) * col(o, at + c));
                            *bias += off * col(o, at + c);
                        }
                        class_cols.push(row);
                    }
                }
                Part::Embedding { table } => {
                    let k = table.shape[0];
                    classes = k;
                    for o in 0..outputs {
                        class_cols.push(
                            (0..k)
                                .map(|c| {
                                    (0..w).map(|j| table.data[c * w + j] * col(o, at + j)).sum()
                                })
                                .collect(),
                        );
                    }
                }
            }
            at += w;
        }
        if let Some(k) = opts.joined_classes {
            if classes > 0 || k == 0 || k >= latent {
                return Err(self.graph_err(format!(
                    "--classes {k}: the input already has a class, or is not wider than {k}"
                )));
            }
            latent -= k;
            let joined: Vec<usize> = noise_cols.split_off(latent);
            class_cols = (0..outputs)
                .map(|o| joined.iter().map(|&i| col(o, i)).collect())
                .collect();
            classes = k;
            class = ClassInput::Joined;
            encoding = format!(
                "one-hot (the last {k} entries of {})",
                self.inputs[noise].name
            );
        }
        if let Some(e) = self.label_encoding {
            let label = self
                .inputs
                .iter()
                .position(|i| i.int.is_some())
                .expect("a label encoding reads a label input");
            class = ClassInput::Label {
                input: label,
                int64: self.inputs[label].int == Some(true),
            };
            encoding = e.into();
        }
        if latent == 0 || latent > MAX_LATENT {
            return Err(self.graph_err(format!(
                "noise of {latent} values; the board draws 1 to {MAX_LATENT}"
            )));
        }
        if classes > MAX_CLASSES {
            return Err(self.graph_err(format!(
                "{classes} classes; the board's app chooses among at most {MAX_CLASSES}"
            )));
        }
        let used = self.inputs.len();
        let expected = 1 + usize::from(!matches!(class, ClassInput::None | ClassInput::Joined));
        if used != expected {
            return Err(self.graph_err(format!(
                "{used} inputs, of which the generator reads {expected}"
            )));
        }
        let mut weight = Vec::with_capacity(outputs * (latent + classes));
        let mut bias = Vec::with_capacity(outputs);
        for o in 0..outputs {
            weight.extend(noise_cols.iter().map(|&i| col(o, i) as f32));
            if classes > 0 {
                weight.extend(class_cols[o].iter().map(|&v| v as f32));
            }
            bias.push((first.bias[o] as f64 + extra_bias[o]) as f32);
        }
        self.layers[0] = Linear {
            inputs: latent + classes,
            outputs,
            weight,
            bias,
        };
        let batch = self.inputs.iter().find_map(|i| i.batch);
        let layers = self
            .layers
            .iter()
            .zip(&self.folded)
            .map(|(l, f)| format!("{}×{} ({})", l.inputs, l.outputs, f.join(" + ")))
            .collect();
        Ok(Imported {
            generator: FloatGenerator {
                latent,
                classes,
                layers: self.layers,
                output,
            },
            layout: InputLayout {
                noise,
                class,
                inputs: self
                    .inputs
                    .iter()
                    .map(|i| (i.name.clone(), i.width, i.rank))
                    .collect(),
                batch,
            },
            class_encoding: encoding,
            output,
            width,
            height,
            layers,
        })
    }
}

/// The image a generator's output draws: the reshape's last two sides, or a square.
fn image_dims(shape: Option<&[i64]>, pixels: usize) -> Option<(usize, usize)> {
    let sides: Vec<usize> = shape
        .unwrap_or(&[])
        .iter()
        .skip(1)
        .map(|&d| d as usize)
        .filter(|&d| d != 1)
        .collect();
    let (w, h) = match sides.as_slice() {
        [h, w] => (*w, *h),
        _ => {
            let side = (pixels as f64).sqrt().round() as usize;
            (side, side)
        }
    };
    (w * h == pixels && w <= MAX_SIDE && h <= MAX_SIDE && w == h).then_some((w, h))
}

/// The inputs of a graph of `layout` computing `g`, for `z` (`n × latent`) and `classes`.
pub fn feed(
    layout: &InputLayout,
    g: &FloatGenerator,
    z: &[f32],
    classes: &[Option<usize>],
) -> TractResult<TVec<TValue>> {
    let n = classes.len();
    let mut inputs: Vec<Option<TValue>> = vec![None; layout.inputs.len()];
    let one_hot = |k: usize| -> Vec<f32> {
        let mut v = vec![0f32; n * k];
        for (row, c) in classes.iter().enumerate() {
            if let Some(c) = c {
                v[row * k + c] = 1.0;
            }
        }
        v
    };
    match &layout.class {
        ClassInput::Joined => {
            let k = g.classes;
            let oh = one_hot(k);
            let mut x = Vec::with_capacity(n * (g.latent + k));
            for row in 0..n {
                x.extend_from_slice(&z[row * g.latent..(row + 1) * g.latent]);
                x.extend_from_slice(&oh[row * k..(row + 1) * k]);
            }
            inputs[layout.noise] = Some(Tensor::from_shape(&[n, g.latent + k], &x)?.into());
        }
        other => {
            inputs[layout.noise] = Some(Tensor::from_shape(&[n, g.latent], z)?.into());
            match other {
                ClassInput::OneHot { input } => {
                    inputs[*input] =
                        Some(Tensor::from_shape(&[n, g.classes], &one_hot(g.classes))?.into());
                }
                ClassInput::Label { input, int64 } => {
                    let labels: Vec<i64> = classes.iter().map(|c| c.unwrap_or(0) as i64).collect();
                    let shape: &[usize] = if layout.inputs[*input].2 == 2 {
                        &[n, 1]
                    } else {
                        &[n]
                    };
                    let t = if *int64 {
                        Tensor::from_shape(shape, &labels)?
                    } else {
                        let l32: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
                        Tensor::from_shape(shape, &l32)?
                    };
                    inputs[*input] = Some(t.into());
                }
                _ => {}
            }
        }
    }
    Ok(inputs
        .into_iter()
        .map(|i| i.expect("every input fed"))
        .collect())
}
