//! `export --onnx`: generators written the ways exporters write them, built here as ONNX
//! graphs, go through the whole export; each is checked against the file itself run in
//! tract. Refused constructs and malformed files give their errors and write nothing.

use export::float_model::Output;
use export::import::{ClassInput, ImportError, ImportOptions, import_onnx};
use export::pipeline::{ExportOptions, Report, Source, Target, Weights, export};
use firmware::format::Model;
use prost::Message;
use std::path::{Path, PathBuf};
use tract_onnx::pb::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType,
};

/// Deterministic values in `[-scale, scale]`.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = firmware::noise::SplitMix64::new(seed);
    (0..n)
        .map(|_| ((rng.next_u32() as f64 / u32::MAX as f64) * 2.0 - 1.0) as f32 * scale)
        .collect()
}

#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    output: String,
    seed: u64,
}

enum Attr {
    F(f32),
    I(i64),
    T(Box<TensorProto>),
}

fn tensor(name: &str, shape: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn int_tensor(name: &str, data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: DataType::Int64 as i32,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str, dt: DataType, dims: &[Option<i64>]) -> ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: dt as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Some(v) => Value::DimValue(*v),
                                None => Value::DimParam("batch".into()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Graph {
    fn new(seed: u64) -> Self {
        Graph {
            seed,
            ..Default::default()
        }
    }

    fn input(&mut self, name: &str, width: Option<usize>, dt: DataType) -> String {
        let dims: Vec<Option<i64>> = match width {
            Some(w) => vec![None, Some(w as i64)],
            None => vec![None],
        };
        self.inputs.push(value_info(name, dt, &dims));
        name.into()
    }

    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let name = format!("/net/{}{}", op.to_lowercase(), self.nodes.len());
        let out = format!("{name}:0");
        self.nodes.push(NodeProto {
            name,
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute: attrs
                .into_iter()
                .map(|(n, a)| match a {
                    Attr::F(f) => AttributeProto {
                        name: n.into(),
                        r#type: AttributeType::Float as i32,
                        f,
                        ..Default::default()
                    },
                    Attr::I(i) => AttributeProto {
                        name: n.into(),
                        r#type: AttributeType::Int as i32,
                        i,
                        ..Default::default()
                    },
                    Attr::T(t) => AttributeProto {
                        name: n.into(),
                        r#type: AttributeType::Tensor as i32,
                        t: Some(*t),
                        ..Default::default()
                    },
                })
                .collect(),
            ..Default::default()
        });
        out
    }

    /// A random initializer.
    fn init(&mut self, shape: &[usize], scale: f32, offset: f32) -> String {
        self.seed += 1;
        let name = format!("p{}", self.inits.len());
        let n = shape.iter().product();
        let data: Vec<f32> = values(n, self.seed, scale)
            .iter()
            .map(|v| v + offset)
            .collect();
        self.inits.push(tensor(&name, shape, &data));
        name
    }

    /// `Gemm` as PyTorch's `nn.Linear` exports it: weight `[out, in]`, `transB = 1`.
    fn linear(&mut self, x: &str, inputs: usize, outputs: usize) -> String {
        let w = self.init(&[outputs, inputs], (3.0 / inputs as f32).sqrt(), 0.0);
        let b = self.init(&[outputs], 0.1, 0.0);
        self.node("Gemm", &[x, &w, &b], vec![("transB", Attr::I(1))])
    }

    fn batch_norm(&mut self, x: &str, n: usize) -> String {
        let g = self.init(&[n], 0.3, 1.0);
        let b = self.init(&[n], 0.2, 0.0);
        let m = self.init(&[n], 0.5, 0.0);
        let v = self.init(&[n], 0.4, 0.6);
        self.node(
            "BatchNormalization",
            &[x, &g, &b, &m, &v],
            vec![("epsilon", Attr::F(1e-5))],
        )
    }

    fn shape_const(&mut self, dims: &[i64]) -> String {
        self.node(
            "Constant",
            &[],
            vec![("value", Attr::T(Box::new(int_tensor("s", dims))))],
        )
    }

    fn write(&mut self, dir: &Path, name: &str, output: &str) -> PathBuf {
        self.output = output.into();
        let model = ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            graph: Some(GraphProto {
                name: "generator".into(),
                node: self.nodes.clone(),
                initializer: self.inits.clone(),
                input: self.inputs.clone(),
                output: vec![ValueInfoProto {
                    name: output.into(),
                    r#type: Some(pb::TypeProto {
                        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                            elem_type: DataType::Float as i32,
                            shape: None,
                        })),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let path = dir.join(name);
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        path
    }
}

fn run_export(path: &Path, out: &Path, joined: Option<usize>) -> anyhow::Result<Report> {
    export(
        &ExportOptions {
            source: Source::Onnx(
                path.to_path_buf(),
                ImportOptions {
                    joined_classes: joined,
                },
            ),
            out: out.to_path_buf(),
            weights: Weights::Int8,
            target: Target::None,
            samples: 60,
        },
        None,
    )
}

/// Exports `path` and checks it against the file run in tract.
fn exports_faithfully(path: &Path, joined: Option<usize>) -> Report {
    let out = path.with_extension("bin");
    let report = run_export(path, &out, joined).unwrap_or_else(|e| panic!("{e:#}"));
    let err = report.import_max_abs_error.expect("an import");
    assert!(err < 1e-4, "the import differs from tract by {err}");
    let f = &report.fidelity;
    assert!(
        f.psnr_mean_db > 30.0,
        "int8 against the file in tract: {:.1} dB",
        f.psnr_mean_db
    );
    let blob = std::fs::read(&out).unwrap();
    let model = Model::from_bytes(&blob).expect("the firmware accepts it");
    let r = report.recognised.as_ref().unwrap();
    assert_eq!(model.header.classes as usize, r.generator.classes);
    assert_eq!(model.header.latent as usize, r.generator.latent);
    assert_eq!(
        (model.header.width as usize, model.header.height as usize),
        (r.width, r.height)
    );
    eprintln!(
        "{}: {} dB, import within {err:.1e}, {:?}",
        path.display(),
        f.psnr_mean_db,
        r.layers
    );
    report
}

#[test]
fn gemm_batch_norm_relu_sigmoid_reshaped_to_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new(1);
    let z = g.input("z", Some(8), DataType::Float);
    let h = g.linear(&z, 8, 24);
    let h = g.batch_norm(&h, 24);
    let h = g.node("Relu", &[&h], vec![]);
    let h = g.linear(&h, 24, 784);
    let h = g.node("Sigmoid", &[&h], vec![]);
    let s = g.shape_const(&[-1, 1, 28, 28]);
    let out = g.node("Reshape", &[&h, &s], vec![]);
    let path = g.write(dir.path(), "unconditional.onnx", &out);
    let report = exports_faithfully(&path, None);
    let r = report.recognised.unwrap();
    assert_eq!(r.layout.class, ClassInput::None);
    assert_eq!((r.width, r.height, r.output), (28, 28, Output::Sigmoid));
}

/// `Gemm(Transpose(x), W, transA = 1)` is `Gemm(x, W)`: both spellings import the same.
#[test]
fn a_transposed_activation_read_with_trans_a() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new(13);
    let z = g.input("z", Some(8), DataType::Float);
    let t = g.node("Transpose", &[&z], vec![]);
    let w = g.init(&[24, 8], 0.5, 0.0);
    let b = g.init(&[24], 0.1, 0.0);
    let h = g.node(
        "Gemm",
        &[&t, &w, &b],
        vec![("transA", Attr::I(1)), ("transB", Attr::I(1))],
    );
    let h = g.node("Relu", &[&h], vec![]);
    let h = g.linear(&h, 24, 784);
    let out = g.node("Sigmoid", &[&h], vec![]);
    let path = g.write(dir.path(), "trans-a.onnx", &out);
    exports_faithfully(&path, None);

    // transA without the transpose reads [batch, features] as [features, batch]: refused.
    let mut g = Graph::new(14);
    let z = g.input("z", Some(8), DataType::Float);
    let w = g.init(&[24, 8], 0.5, 0.0);
    let h = g.node("Gemm", &[&z, &w], vec![("transA", Attr::I(1))]);
    let out = g.node("Sigmoid", &[&h], vec![]);
    let path = g.write(dir.path(), "trans-a-alone.onnx", &out);
    let msg = import_onnx(&path, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("transposed"), "{msg}");
}

#[test]
fn matmul_add_and_a_decomposed_batch_norm_with_a_one_hot_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new(2);
    let z = g.input("noise", Some(8), DataType::Float);
    let y = g.input("onehot", Some(10), DataType::Float);
    let x = g.node("Concat", &[&z, &y], vec![("axis", Attr::I(1))]);
    let w = g.init(&[18, 20], 0.4, 0.0);
    let b = g.init(&[20], 0.1, 0.0);
    let h = g.node("MatMul", &[&x, &w], vec![]);
    let h = g.node("Add", &[&h, &b], vec![]);
    // (h - mean) / sqrt(var + eps) * gamma + beta, as a decomposing exporter writes it.
    let mean = g.init(&[20], 0.3, 0.0);
    let var = g.init(&[20], 0.3, 0.5);
    let eps = g.node(
        "Constant",
        &[],
        vec![("value", Attr::T(Box::new(tensor("eps", &[], &[1e-5]))))],
    );
    let gamma = g.init(&[1, 20], 0.3, 1.0);
    let beta = g.init(&[20], 0.2, 0.0);
    let h = g.node("Sub", &[&h, &mean], vec![]);
    let d = g.node("Add", &[&var, &eps], vec![]);
    let d = g.node("Sqrt", &[&d], vec![]);
    let h = g.node("Div", &[&h, &d], vec![]);
    let h = g.node("Mul", &[&gamma, &h], vec![]);
    let h = g.node("Add", &[&h, &beta], vec![]);
    let h = g.node("LeakyRelu", &[&h], vec![("alpha", Attr::F(0.0))]);
    // Gemm with the weight as [in, out], alpha and beta.
    let w = g.init(&[20, 784], 0.5, 0.0);
    let c = g.init(&[784], 0.1, 0.0);
    let h = g.node(
        "Gemm",
        &[&h, &w, &c],
        vec![("alpha", Attr::F(0.5)), ("beta", Attr::F(2.0))],
    );
    let out = g.node("Sigmoid", &[&h], vec![]);
    let path = g.write(dir.path(), "matmul.onnx", &out);
    let r = exports_faithfully(&path, None).recognised.unwrap();
    assert_eq!(r.layout.class, ClassInput::OneHot { input: 1 });
    assert_eq!((r.generator.latent, r.generator.classes), (8, 10));
}

#[test]
fn class_first_batch_norm_after_relu_and_tanh() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new(3);
    let y = g.input("class", Some(10), DataType::Float);
    let z = g.input("z", Some(12), DataType::Float);
    let x = g.node("Concat", &[&y, &z], vec![("axis", Attr::I(-1))]);
    let h = g.linear(&x, 22, 32);
    let h = g.node("Relu", &[&h], vec![]);
    let h = g.batch_norm(&h, 32);
    let h = g.linear(&h, 32, 256);
    let h = g.node("Tanh", &[&h], vec![]);
    let s = g.shape_const(&[-1, 16, 16]);
    let out = g.node("Reshape", &[&h, &s], vec![]);
    let path = g.write(dir.path(), "tanh.onnx", &out);
    let r = exports_faithfully(&path, None).recognised.unwrap();
    assert_eq!(r.layout.class, ClassInput::OneHot { input: 0 });
    assert_eq!((r.width, r.height, r.output), (16, 16, Output::Tanh));
    assert_eq!(r.layout.noise, 1);
}

#[test]
fn an_integer_label_through_an_embedding_or_one_hot() {
    let dir = tempfile::tempdir().unwrap();
    for one_hot in [false, true] {
        let mut g = Graph::new(4);
        let z = g.input("z", Some(8), DataType::Float);
        let label = g.input("label", None, DataType::Int64);
        let c = if one_hot {
            let depth = g.node(
                "Constant",
                &[],
                vec![("value", Attr::T(Box::new(int_tensor("d", &[10]))))],
            );
            let vals = g.node(
                "Constant",
                &[],
                vec![("value", Attr::T(Box::new(int_tensor("v", &[0, 1]))))],
            );
            let oh = g.node("OneHot", &[&label, &depth, &vals], vec![]);
            g.node(
                "Cast",
                &[&oh],
                vec![("to", Attr::I(DataType::Float as i64))],
            )
        } else {
            let table = g.init(&[10, 6], 1.0, 0.0);
            g.node("Gather", &[&table, &label], vec![])
        };
        let x = g.node("Concat", &[&z, &c], vec![("axis", Attr::I(1))]);
        let width = if one_hot { 18 } else { 14 };
        let h = g.linear(&x, width, 24);
        let h = g.node("Relu", &[&h], vec![]);
        let h = g.linear(&h, 24, 784);
        let out = g.node("Sigmoid", &[&h], vec![]);
        let path = g.write(dir.path(), &format!("label-{one_hot}.onnx"), &out);
        let r = exports_faithfully(&path, None).recognised.unwrap();
        assert_eq!(
            r.layout.class,
            ClassInput::Label {
                input: 1,
                int64: true
            }
        );
        assert_eq!(r.generator.classes, 10);
    }
}

#[test]
fn one_input_with_the_class_joined_and_weights_in_constant_nodes_and_external_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new(5);
    let x = g.input("x", Some(18), DataType::Float);
    let w: Vec<f32> = values(24 * 18, 50, 0.4);
    let w = g.node(
        "Constant",
        &[],
        vec![("value", Attr::T(Box::new(tensor("w", &[24, 18], &w))))],
    );
    let b = g.init(&[24], 0.1, 0.0);
    let h = g.node("Gemm", &[&x, &w, &b], vec![("transB", Attr::I(1))]);
    let h = g.node("Relu", &[&h], vec![]);
    // The last weight lives in a file beside the model.
    let data = values(784 * 24, 51, 0.5);
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.path().join("weights.bin"), &bytes).unwrap();
    g.inits.push(TensorProto {
        name: "w_out".into(),
        dims: vec![784, 24],
        data_type: DataType::Float as i32,
        data_location: Some(pb::tensor_proto::DataLocation::External as i32),
        external_data: vec![
            pb::StringStringEntryProto {
                key: "location".into(),
                value: "weights.bin".into(),
            },
            pb::StringStringEntryProto {
                key: "length".into(),
                value: bytes.len().to_string(),
            },
        ],
        ..Default::default()
    });
    let h = g.node("Gemm", &[&h, "w_out"], vec![("transB", Attr::I(1))]);
    let out = g.node("Sigmoid", &[&h], vec![]);
    let path = g.write(dir.path(), "joined.onnx", &out);
    let r = exports_faithfully(&path, Some(10)).recognised.unwrap();
    assert_eq!(r.layout.class, ClassInput::Joined);
    assert_eq!((r.generator.latent, r.generator.classes), (8, 10));
}

fn refusal(g: &mut Graph, out: &str, dir: &Path, name: &str) -> (String, PathBuf) {
    let path = g.write(dir, name, out);
    let blob = dir.join("model.bin");
    let err = run_export(&path, &blob, None).expect_err("refused");
    assert!(!blob.exists(), "a refused export wrote {}", blob.display());
    (format!("{err:#}"), path)
}

fn mlp_start(g: &mut Graph) -> String {
    let z = g.input("z", Some(8), DataType::Float);
    let h = g.linear(&z, 8, 16);
    g.node("Relu", &[&h], vec![])
}

#[test]
fn constructs_the_engine_cannot_run_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    // A convolution.
    let mut g = Graph::new(6);
    let h = mlp_start(&mut g);
    let w = g.init(&[1, 16, 3], 0.1, 0.0);
    let out = g.node("Conv", &[&h, &w], vec![]);
    let (msg, _) = refusal(&mut g, &out, dir.path(), "conv.onnx");
    assert!(
        msg.contains("/net/conv") && msg.contains("Conv is not a dense layer"),
        "{msg}"
    );

    // A LeakyReLU with a slope.
    let mut g = Graph::new(7);
    let z = g.input("z", Some(8), DataType::Float);
    let h = g.linear(&z, 8, 16);
    let out = g.node("LeakyRelu", &[&h], vec![("alpha", Attr::F(0.2))]);
    let (msg, _) = refusal(&mut g, &out, dir.path(), "leaky.onnx");
    assert!(msg.contains("LeakyRelu with slope 0.2"), "{msg}");

    // A skip connection: one ReLU read by two layers.
    let mut g = Graph::new(8);
    let h = mlp_start(&mut g);
    let a = g.linear(&h, 16, 16);
    let _b = g.linear(&h, 16, 16);
    let out = g.node("Sigmoid", &[&a], vec![]);
    let (msg, _) = refusal(&mut g, &out, dir.path(), "skip.onnx");
    assert!(
        msg.contains("reads too") && msg.contains("one chain"),
        "{msg}"
    );

    // Softmax at the end.
    let mut g = Graph::new(9);
    let h = mlp_start(&mut g);
    let h = g.linear(&h, 16, 784);
    let out = g.node("Softmax", &[&h], vec![]);
    let (msg, _) = refusal(&mut g, &out, dir.path(), "softmax.onnx");
    assert!(
        msg.contains("Softmax is not part of the MLP generator family"),
        "{msg}"
    );

    // An image that is not square.
    let mut g = Graph::new(10);
    let h = mlp_start(&mut g);
    let h = g.linear(&h, 16, 30);
    let out = g.node("Sigmoid", &[&h], vec![]);
    let (msg, _) = refusal(&mut g, &out, dir.path(), "odd.onnx");
    assert!(msg.contains("not a square image"), "{msg}");
}

#[test]
fn malformed_files_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new(11);
    let h = mlp_start(&mut g);
    let h = g.linear(&h, 16, 784);
    let out = g.node("Sigmoid", &[&h], vec![]);
    let good = g.write(dir.path(), "good.onnx", &out);
    let bytes = std::fs::read(&good).unwrap();
    let check = |name: &str, contents: &[u8], needle: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        let err = import_onnx(&path, &ImportOptions::default()).expect_err(name);
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(needle), "{name}: {msg}");
        let blob = dir.path().join(format!("{name}.bin"));
        assert!(run_export(&path, &blob, None).is_err());
        assert!(!blob.exists());
        err
    };
    let e = check(
        "truncated.onnx",
        &bytes[..bytes.len() / 2],
        "not an ONNX protobuf",
    );
    assert!(matches!(e, ImportError::Read { .. }));
    check(
        "text.onnx",
        b"this is not a model\n",
        "not an ONNX protobuf",
    );

    // A missing initializer.
    let mut missing = g.inits.clone();
    missing.remove(0);
    let mut g2 = Graph {
        nodes: g.nodes.clone(),
        inits: missing,
        inputs: g.inputs.clone(),
        ..Graph::new(0)
    };
    let p = g2.write(dir.path(), "missing.onnx", &out);
    let msg = import_onnx(&p, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("reads p0") && msg.contains("missing initializer"),
        "{msg}"
    );

    // Nodes out of order: a cycle, or a graph not sorted.
    let mut reversed = g.nodes.clone();
    reversed.reverse();
    let mut g3 = Graph {
        nodes: reversed,
        inits: g.inits.clone(),
        inputs: g.inputs.clone(),
        ..Graph::new(0)
    };
    let p = g3.write(dir.path(), "cycle.onnx", &out);
    let msg = import_onnx(&p, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("out of order"), "{msg}");

    // Nodes with too few inputs.
    for (op, inputs) in [
        ("Relu", vec![]),
        ("Gemm", vec!["z"]),
        ("BatchNormalization", vec!["z"]),
    ] {
        let mut g4 = Graph::new(12);
        let z = g4.input("z", Some(8), DataType::Float);
        let _ = z;
        let out = g4.node(op, &inputs, vec![]);
        let p = g4.write(dir.path(), &format!("short-{op}.onnx"), &out);
        let msg = import_onnx(&p, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("takes at least"), "{op}: {msg}");
    }

    let msg = import_onnx(&dir.path().join("absent.onnx"), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no such file"), "{msg}");
}
